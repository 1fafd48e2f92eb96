"""What a /dev/video* node is and offers, asked with plain V4L2 ioctls (no v4l-utils needed).

VIDIOC_QUERYCAP gives the driver ("uvcvideo", "v4l2 loopback"), the card label and whether the
node captures or takes output; VIDIOC_ENUM_FMT lists its pixel formats. Under v4l2loopback's
exclusive_caps=1 a device says OUTPUT while nobody writes to it and CAPTURE once a writer
streams, which is exactly what Chrome looks at.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os

# <linux/videodev2.h> capability bits and buffer types.
CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_OUTPUT = 0x00000002
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_VIDEO_OUTPUT_MPLANE = 0x00002000
CAP_META_CAPTURE = 0x00800000
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
BUF_TYPE_VIDEO_OUTPUT = 2
LOOPBACK_DRIVER = "v4l2 loopback"
LOOPBACK_MODULE = "/sys/module/v4l2loopback"  # there while the kernel module is loaded


class _Capability(ctypes.Structure):
    _fields_ = [
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


class _PixFormat(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("pixelformat", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("bytesperline", ctypes.c_uint32),
        ("sizeimage", ctypes.c_uint32),
        ("colorspace", ctypes.c_uint32),
        ("priv", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("ycbcr_enc", ctypes.c_uint32),
        ("quantization", ctypes.c_uint32),
        ("xfer_func", ctypes.c_uint32),
    ]


class _FormatUnion(ctypes.Union):
    # 200 bytes, 8-aligned: some members of the kernel's union hold pointers.
    _fields_ = [
        ("pix", _PixFormat),
        ("raw_data", ctypes.c_uint8 * 200),
        ("_align", ctypes.c_void_p),
    ]


class _Format(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("fmt", _FormatUnion)]


class _FmtDesc(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("description", ctypes.c_char * 32),
        ("pixelformat", ctypes.c_uint32),
        ("mbus_code", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


class _Fract(ctypes.Structure):
    _fields_ = [("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32)]


class _StreamParm(ctypes.Structure):
    # v4l2_streamparm: the capture and output members share this layout up to timeperframe.
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("capability", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("timeperframe", _Fract),
        ("raw_data", ctypes.c_uint8 * (200 - 16)),
    ]


def _ioc(direction: int, nr: int, size: int) -> int:
    # asm-generic/ioctl.h: dir(2) | size(14) | type(8) | nr(8); type is 'V' for V4L2.
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


_IOC_WRITE, _IOC_READ = 1, 2
VIDIOC_QUERYCAP = _ioc(_IOC_READ, 0, ctypes.sizeof(_Capability))
VIDIOC_ENUM_FMT = _ioc(_IOC_READ | _IOC_WRITE, 2, ctypes.sizeof(_FmtDesc))
VIDIOC_G_FMT = _ioc(_IOC_READ | _IOC_WRITE, 4, ctypes.sizeof(_Format))
VIDIOC_STREAMON = _ioc(_IOC_WRITE, 18, ctypes.sizeof(ctypes.c_int))
VIDIOC_G_PARM = _ioc(_IOC_READ | _IOC_WRITE, 21, ctypes.sizeof(_StreamParm))
VIDIOC_S_PARM = _ioc(_IOC_READ | _IOC_WRITE, 22, ctypes.sizeof(_StreamParm))


class DeviceInfo:
    """What one node is and offers. A plain class, not a dataclass: the keeper (keeper.py) asks
    before anything heavy is imported, and `dataclasses` alone loads 38 modules (inspect, re...)."""

    __slots__ = ("path", "driver", "card", "bus_info", "caps", "capture_formats", "output_formats")

    def __init__(
        self, path: str, driver: str, card: str, bus_info: str,
        caps: int,  # the node's own capabilities (device_caps when the driver reports them)
        capture_formats: tuple[str, ...], output_formats: tuple[str, ...],
    ) -> None:  # fmt: skip
        self.path, self.driver, self.card, self.bus_info = path, driver, card, bus_info
        self.caps, self.capture_formats, self.output_formats = caps, capture_formats, output_formats

    def __repr__(self) -> str:
        return f"DeviceInfo({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"

    @property
    def is_loopback(self) -> bool:
        return self.driver == LOOPBACK_DRIVER

    @property
    def can_capture(self) -> bool:
        return bool(self.caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE))

    @property
    def can_output(self) -> bool:
        return bool(self.caps & (CAP_VIDEO_OUTPUT | CAP_VIDEO_OUTPUT_MPLANE))

    @property
    def is_metadata_only(self) -> bool:
        # UVC cameras add a second node per camera that carries only metadata.
        return bool(self.caps & CAP_META_CAPTURE) and not (self.can_capture or self.can_output)

    @property
    def loopback_index(self) -> int | None:
        """v4l2loopback's device number (index into its per-device module parameters)."""
        prefix = "platform:v4l2loopback-"
        if self.is_loopback and self.bus_info.startswith(prefix):
            try:
                return int(self.bus_info[len(prefix) :])
            except ValueError:
                return None
        return None


def fourcc_text(code: int) -> str:
    return code.to_bytes(4, "little").decode("ascii", "replace").rstrip("\x00 ")


def _enum_formats(fd: int, buf_type: int) -> tuple[str, ...]:
    found = []
    for index in range(64):  # drivers end the list with EINVAL; 64 is a safety bound
        desc = _FmtDesc(index=index, type=buf_type)
        try:
            fcntl.ioctl(fd, VIDIOC_ENUM_FMT, desc)
        except OSError:
            break
        found.append(fourcc_text(desc.pixelformat))
    return tuple(found)


def query(path: str) -> DeviceInfo:
    """QUERYCAP + ENUM_FMT on `path`; raises OSError (EACCES, ENOENT, ENOTTY...) on failure.

    Opened non-blocking and never streamed, so a camera's light stays off.
    """
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        cap = _Capability()
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, cap)
        caps = cap.device_caps if cap.capabilities & CAP_DEVICE_CAPS else cap.capabilities
        capture = _enum_formats(fd, BUF_TYPE_VIDEO_CAPTURE) if caps & CAP_VIDEO_CAPTURE else ()
        output = _enum_formats(fd, BUF_TYPE_VIDEO_OUTPUT) if caps & CAP_VIDEO_OUTPUT else ()
        return DeviceInfo(
            path=path,
            driver=cap.driver.decode(errors="replace"),
            card=cap.card.decode(errors="replace"),
            bus_info=cap.bus_info.decode(errors="replace"),
            caps=caps,
            capture_formats=capture,
            output_formats=output,
        )
    finally:
        os.close(fd)


def explain_oserror(exc: OSError) -> str:
    if exc.errno == errno.EACCES:
        return "no permission (add yourself to the video group: sudo usermod -aG video $USER)"
    if exc.errno == errno.EBUSY:
        return "busy (another program holds it)"
    if exc.errno == errno.ENOTTY:
        return "not a V4L2 device"
    return exc.strerror or str(exc)


def get_format(fd: int, buf_type: int) -> tuple[int, int, str, int]:
    """VIDIOC_G_FMT on an open node: (width, height, fourcc text, bytes per frame), e.g.
    (640, 360, "YU12", 345600); OSError when the driver refuses."""
    fmt = _Format(type=buf_type)
    fcntl.ioctl(fd, VIDIOC_G_FMT, fmt)
    pix = fmt.fmt.pix
    return pix.width, pix.height, fourcc_text(pix.pixelformat), pix.sizeimage


def stream_on(fd: int, buf_type: int) -> None:
    """VIDIOC_STREAMON; OSError when the driver refuses."""
    fcntl.ioctl(fd, VIDIOC_STREAMON, ctypes.c_int(buf_type))


def time_per_frame(fps: float) -> tuple[int, int]:
    """V4L2's frame interval (numerator, denominator) for `fps`, in lowest terms:
    30 -> (1, 30), 29.97 -> (100, 2997)."""
    num, den = 1000, max(1, round(fps * 1000))
    a, b = num, den
    while b:  # Euclid here: math is one module more for the keeper (keeper.py)
        a, b = b, a % b
    return num // a, den // a


def set_frame_rate(fd: int, buf_type: int, fps: float) -> float:
    """VIDIOC_S_PARM: the stream's frame interval for `fps`; returns the rate the driver
    took. On v4l2loopback the writer's OUTPUT rate is what every reader's G_PARM says.
    OSError when the driver refuses."""
    parm = _StreamParm(type=buf_type)
    parm.timeperframe.numerator, parm.timeperframe.denominator = time_per_frame(fps)
    fcntl.ioctl(fd, VIDIOC_S_PARM, parm)
    return _rate(parm)


def get_frame_rate(fd: int, buf_type: int) -> float:
    """VIDIOC_G_PARM: the rate the stream advertises (frames per second, 0 if none)."""
    parm = _StreamParm(type=buf_type)
    fcntl.ioctl(fd, VIDIOC_G_PARM, parm)
    return _rate(parm)


def _rate(parm: _StreamParm) -> float:
    tpf = parm.timeperframe
    return tpf.denominator / tpf.numerator if tpf.numerator else 0.0
