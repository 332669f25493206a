"""The command line's consoles: user text (file names, messages, table cells) is printed literally.

Both consoles have rich markup and highlighting off, so a name such as `c[bold red]x.png` or `a[/b]`
prints as it is instead of being read as a style tag (or crashing rich); the only styles are the
`error:` and `warning:` labels, added as styled text rather than as markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

out_console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def print_line(message: str) -> None:
    """Print one line of results on stdout, literally."""
    out_console.print(message)


def print_error(message: str) -> None:
    """Print `error: message` on one line of stderr, the message literally."""
    err_console.print(Text.assemble(("error:", "red"), " ", str(message)))


def print_warning(message: str) -> None:
    """Print `warning: message` on one line of stderr, the message literally."""
    err_console.print(Text.assemble(("warning:", "yellow"), " ", str(message)))
