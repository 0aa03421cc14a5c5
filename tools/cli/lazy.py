"""A command group that imports each command's module only when that command runs.

`recsys --help` lists every command from the table below its group, so listing them loads none
of their modules (NumPy, SciPy, the evaluation and model code, gRPC clients); running one, or
asking for its own `--help`, imports just its module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # Typer carries its own copy of Click; its types are only named here
    from typer._click.core import Command


@dataclass(frozen=True)
class LazyCommand:
    """A command by name: where it lives ("module:attribute", a function or a Typer app) and the
    one line `recsys --help` shows for it (a test checks it against the command's own help)."""

    name: str
    target: str
    summary: str

    def load(self) -> Command:
        module, attribute = self.target.split(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):
            command = typer.main.get_command(found)
        else:
            single = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
            single.command(self.name)(found)
            command = typer.main.get_command(single)
        command.name = self.name
        return command


class LazyGroup(TyperGroup):
    """A Typer group whose commands come from `LAZY_COMMANDS`, loaded on first use."""

    LAZY_COMMANDS: tuple[LazyCommand, ...] = ()

    def _lazy(self, name: str) -> LazyCommand | None:
        return next((c for c in self.LAZY_COMMANDS if c.name == name), None)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return [c.name for c in self.LAZY_COMMANDS]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Command | None:
        """The loaded command, or for help listings a stand-in that carries only its summary."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        lazy = self._lazy(cmd_name)
        return None if lazy is None else TyperCommand(lazy.name, help=lazy.summary)

    def resolve_command(
        self, ctx: typer.Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        lazy = self._lazy(args[0]) if args else None
        if lazy is not None and lazy.name not in self.commands:
            self.commands[lazy.name] = lazy.load()
        if args and lazy is None and not args[0].startswith("-"):
            close = get_close_matches(args[0], self.list_commands(ctx))
            hint = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
            ctx.fail(f"No such command {args[0]!r}.{hint}")
        return super().resolve_command(ctx, args)


def lazy_group(commands: tuple[LazyCommand, ...]) -> type[LazyGroup]:
    """A LazyGroup class serving `commands` (Typer takes the group as a class)."""
    return type("RecsysCommands", (LazyGroup,), {"LAZY_COMMANDS": commands})
