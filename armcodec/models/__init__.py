"""Models: the protocol (:mod:`.base`), the registry (:mod:`.registry`) and the built-in
architectures, which register themselves on import."""
from armcodec.models import pixelcnn_exact  # noqa: F401  (registers "wavefront-pixelcnn")
from armcodec.models import pyramid_exact  # noqa: F401  (registers "polyphase-pyramid")
from armcodec.models import temporal_exact  # noqa: F401  (registers "temporal-pixelcnn")
