"""armcodec as a format of other libraries: Pillow (:mod:`.pil_arm`) and imageio v3
(:mod:`.imageio_arm`), both registered by ``import armcodec``."""
from armcodec.plugins import imageio_arm, pil_arm  # noqa: F401  (registration)
