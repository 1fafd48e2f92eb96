"""pixcam: a virtual webcam that blurs or replaces the background with BodyPix."""

__version__ = "0.1.0"
