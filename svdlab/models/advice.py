"""What to tell a user whose model the hub cannot give: why (offline, gated, unreachable), what to do."""

from __future__ import annotations

import huggingface_hub.constants
from huggingface_hub.errors import GatedRepoError

from svdlab.models.presets import REPO_TO_PRESET

# unet + vae + image_encoder safetensors of the diffusers layout (the same for all three SVD repositories)
SVD_DOWNLOAD = "about 9 GB; 4.5 GB with --variant fp16"
OFFLINE_CHOICES = (
    'offline, use the shipped model (--model demo, or model = "demo" in a sweep spec) '
    "or a local diffusers folder (--model PATH)"
)


def hub_failure_message(repo_id: str, error: BaseException) -> str:
    """One line: why `repo_id` could not be downloaded, how to get it (gated SVD repositories), what to use
    offline."""
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set, so the model hub was not asked, and no complete copy is cached"
    elif isinstance(error, GatedRepoError):
        why = "the repository is gated and this machine has no access to it"
    else:
        text = str(error).strip()
        reason = text.split(" (")[0].splitlines()[0] if text else type(error).__name__
        why = f"the model hub is unreachable or refused, and no complete copy is cached ({reason[:120]})"
    parts = [f"cannot get {repo_id}: {why}"]
    if repo_id in REPO_TO_PRESET or isinstance(error, GatedRepoError):
        size = f" ({SVD_DOWNLOAD})" if repo_id in REPO_TO_PRESET else ""
        parts.append(
            f"the SVD repositories are gated: accept the licence at https://huggingface.co/{repo_id}, "
            "log in with `hf auth login` (or set HF_TOKEN), then run the command once online, which caches "
            f"the model{size}, or pre-download it with `hf download {repo_id}`"
        )
    parts.append(OFFLINE_CHOICES)
    return "; ".join(parts)
