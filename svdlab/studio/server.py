"""`svdlab serve`: check the address, load the model once per device, and run the studio under uvicorn."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from svdlab.errors import SvdlabError
from svdlab.media.atomic import check_writable
from svdlab.quiet import quiet_libraries
from svdlab.studio.exposure import check_exposure


def check_port(host: str, port: int) -> None:
    """Refuse a port that is no port or that another program holds, before the model loads."""
    if not 0 < port < 65536:
        raise SvdlabError(f"--port {port} is not a port; give one in 1..65535, e.g. 7860")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SvdlabError(
                    f"port {port} on {host} is in use; pass --port N or stop the other server"
                ) from None
            reason = error.strerror or str(error)
            raise SvdlabError(f"cannot listen on {host}:{port} ({reason}); check --host and --port") from None


def serve(
    model: str,
    host: str,
    port: int,
    runs_dir: Path,
    token: str | None,
    devices: list[str | None],
    dtype: str | None,
    max_upload_bytes: int,
    max_pixels: int,
    batch_size: int | None,
    announce,
) -> None:
    """Serve the studio until Ctrl-C; queued jobs stay in the store for the next start."""
    check_exposure(host, token)  # refusals first: they need neither torch nor the model
    check_port(host, port)
    check_writable(runs_dir)
    quiet_libraries()
    import uvicorn

    from svdlab.models import load_model
    from svdlab.studio.app import Studio, create_app

    models = [load_model(model, device=device, dtype=dtype) for device in devices]
    studio = Studio(runs_dir, models, token, max_upload_bytes, max_pixels, batch_size)
    config = uvicorn.Config(
        create_app(studio), host=host, port=port, log_level="warning", timeout_graceful_shutdown=3
    )
    shown = f"[{host}]" if ":" in host else host
    devices_text = ", ".join(str(loaded.device) for loaded in models)
    announce(
        f"svdlab studio: http://{shown}:{port}/{'?token=TOKEN' if token else ''} ({models[0].name} on "
        f"{devices_text}; API at /docs); Ctrl-C stops it, queued jobs are kept in {runs_dir}"
    )
    uvicorn.Server(config).run()
