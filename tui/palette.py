"""The command palette's console commands: every screen and every action of every screen,
offered from anywhere (an action of another screen switches to it first)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class ConsoleCommand:
    name: str
    help: str
    run: Callable[[], Awaitable[None]]


def console_commands(app, entries) -> list[ConsoleCommand]:
    """A "Go to" per screen, then each screen's bound actions (those with a description)."""
    found = [
        ConsoleCommand(f"Go to {e.title}", f"key {e.key}", partial(_run_on, app, e.mode, None))
        for e in entries
    ]
    for entry in entries:
        screen_class = getattr(importlib.import_module(entry.module), entry.class_name)
        for binding in screen_class.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            found.append(
                ConsoleCommand(
                    f"{entry.title}: {binding.description}",
                    f"key {binding.key_display or binding.key} on {entry.title} ({entry.key})",
                    partial(_run_on, app, entry.mode, binding.action),
                )
            )
    return found


async def _run_on(app, mode: str, action: str | None) -> None:
    if app.current_mode != mode:
        await app.switch_mode(mode)
    if action is not None:
        await app.screen.run_action(action)


class ConsoleCommands(Provider):
    async def startup(self) -> None:
        from tui.app import SCREENS

        # The screens' modules are imported the first time (the heatmap's needs numpy):
        # off the event loop.
        self.commands = await asyncio.to_thread(console_commands, self.app, SCREENS)

    async def discover(self) -> Hits:
        for command in self.commands:
            yield DiscoveryHit(command.name, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands:
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, matcher.highlight(command.name), command.run, help=command.help)
