"""Hardware profiles (TOML) and their strict schema/loader. Installed as ``edgecnn.profiles``.

from edgecnn.profiles import get_profile
p = get_profile("cortex-a76-rpi5")        # or a path to a calibrated profile TOML
"""

if __name__ == "profiles":  # pragma: no cover - guard against importing the source folder as a top-level package
    raise ImportError("import edgecnn.profiles, not profiles (the folder is installed as edgecnn.profiles)")

from edgecnn.profiles.loader import (  # noqa: E402
    FLOAT_OPS_INT8,
    FUSIBLE_KINDS,
    OP_KINDS,
    OPTIONAL_KINDS,
    PRECISIONS,
    Profile,
    builtin_profiles,
    get_profile,
    load_profile_file,
    parse_profile,
)

__all__ = [
    "FLOAT_OPS_INT8",
    "FUSIBLE_KINDS",
    "OPTIONAL_KINDS",
    "OP_KINDS",
    "PRECISIONS",
    "Profile",
    "builtin_profiles",
    "get_profile",
    "load_profile_file",
    "parse_profile",
]
