"""The 24 BodyPix body parts: names (index = part id), groups and the seed's rainbow palette."""

from __future__ import annotations

from collections.abc import Iterable

from pixcam.errors import PixcamError

PART_NAMES: tuple[str, ...] = (
    "left_face",
    "right_face",
    "left_upper_arm_front",
    "left_upper_arm_back",
    "right_upper_arm_front",
    "right_upper_arm_back",
    "left_lower_arm_front",
    "left_lower_arm_back",
    "right_lower_arm_front",
    "right_lower_arm_back",
    "left_hand",
    "right_hand",
    "torso_front",
    "torso_back",
    "left_upper_leg_front",
    "left_upper_leg_back",
    "right_upper_leg_front",
    "right_upper_leg_back",
    "left_lower_leg_front",
    "left_lower_leg_back",
    "right_lower_leg_front",
    "right_lower_leg_back",
    "left_foot",
    "right_foot",
)

# Handy names for what users mean most often.
PART_GROUPS: dict[str, tuple[str, ...]] = {
    "face": ("left_face", "right_face"),
    "hands": ("left_hand", "right_hand"),
}

# The seed's 24-colour rainbow (RGB), one colour per part id.
RAINBOW: tuple[tuple[int, int, int], ...] = (
    (110, 64, 170), (143, 61, 178), (178, 60, 178), (210, 62, 167),
    (238, 67, 149), (255, 78, 125), (255, 94, 99), (255, 115, 75),
    (255, 140, 56), (239, 167, 47), (217, 194, 49), (194, 219, 64),
    (175, 240, 91), (135, 245, 87), (96, 247, 96), (64, 243, 115),
    (40, 234, 141), (28, 219, 169), (26, 199, 194), (33, 176, 213),
    (47, 150, 224), (65, 125, 223), (83, 101, 214), (97, 79, 200),
)  # fmt: skip


def part_ids(names: Iterable[str]) -> list[int]:
    """Part ids for part names and groups; a wrong name lists the valid ones."""
    ids: list[int] = []
    for name in names:
        members = PART_GROUPS.get(name, (name,))
        for member in members:
            if member not in PART_NAMES:
                valid = ", ".join((*PART_GROUPS, *PART_NAMES))
                raise PixcamError(f"unknown body part {name!r}; valid names: {valid}")
            ids.append(PART_NAMES.index(member))
    return sorted(set(ids))
