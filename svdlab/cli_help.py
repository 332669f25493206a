"""Help that reads as users type: IMAGE... and --size WxH rather than <list[str]>, -h as well as --help,
examples under each command, and the presets' own defaults named where an option defaults to the model's."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

TYPE_NAMES = {"int": "INT", "float": "NUMBER", "str": "TEXT", "Path": "PATH"}
FROM_MODEL = "from the model"  # show_default of options whose default comes from the model's preset
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
PRESET_OPTIONS = (
    "motion_bucket_id",
    "noise_aug_strength",
    "fps",
    "num_frames",
    "steps",
    "min_guidance",
    "max_guidance",
    "size",
    "decode_chunk_size",
)


def examples(*commands: str) -> str:
    """An epilog listing example command lines, one per paragraph."""
    return "\n\n".join(["Examples:", *(f"  {command}" for command in commands)])


def preset_defaults(option: str) -> str:
    """The presets' defaults for an option, equal values grouped: 'svd* 25, demo 12, tiny-random 10' (svd*:
    every SVD preset on the hub)."""
    from svdlab.models.presets import PRESETS

    by_value: dict[str, list[str]] = {}
    for preset in PRESETS.values():
        if option == "size":
            value = f"{preset.width}x{preset.height}"
        else:  # the decode chunk is the whole video unless set
            value = f"{getattr(preset, 'num_frames' if option == 'decode_chunk_size' else option):g}"
        by_value.setdefault(value, []).append(preset.name)
    if len(by_value) == 1:
        return f"{next(iter(by_value))} for every preset"
    hub = [preset.name for preset in PRESETS.values() if preset.repo_id]
    named = []
    for names in by_value.values():
        if set(hub) <= set(names):
            names = ["svd*", *(name for name in names if name not in hub)]
        named.append("/".join(names))
    return ", ".join(f"{names} {value}" for names, value in zip(named, by_value))


class ReadableCommand(TyperCommand):
    """A typer command whose help names values as users write them and names the presets' defaults."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.metavar = param.metavar or param.name.upper() + ("..." if param.nargs != 1 else "")
                param.display_type_rich = _no_type
                param.get_usage_pieces = _usage_piece(param)
            elif isinstance(param, TyperOption) and param.is_flag:
                param.secondary_opts = []  # --quiet alone, not --quiet / --no-quiet (off is the default)
            elif isinstance(param, TyperOption) and param.metavar is None:
                bare = param.bare_type()
                param.metavar = "X,Y" if bare.startswith("list[") else TYPE_NAMES.get(bare, bare.upper())

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Name the presets' defaults (read only when help is shown), then format as typer does."""
        for param in self.get_params(ctx):
            if param.show_default == FROM_MODEL and param.name in PRESET_OPTIONS:
                param.show_default = preset_defaults(param.name)
        _untyped_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


class ReadableGroup(TyperGroup):
    """A typer command group whose flags show no <bool> type in its help."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Format as typer does, without type labels on flags."""
        _untyped_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


def _untyped_flags(params: list) -> None:
    """Flags take no value, so their help shows no type (the help option -h is only made at help time)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.display_type_rich = _no_type


def _no_type(ctx: Any) -> None:
    return None


def _usage_piece(argument: TyperArgument):
    """An argument in the usage line as typed: IMAGE... when required, [NAME] when optional."""
    piece = argument.metavar if argument.required else f"[{argument.metavar}]"
    return lambda ctx: [piece]


class ReadableTyper(typer.Typer):
    """typer.Typer whose commands are ReadableCommands and take -h for help."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cls=ReadableGroup, context_settings=HELP_OPTIONS, **kwargs)

    def command(self, *args, **kwargs):
        """Register a command (a ReadableCommand unless `cls` says otherwise)."""
        kwargs.setdefault("cls", ReadableCommand)
        return super().command(*args, **kwargs)
