"""The migration screen's plan dialog: the venue and the legacy intervals to plan.

It says before anything is written what the plan will be, and warns when the venue is
not the one the legacy files belong to (planning it is refused: the engine's rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, SelectionList, Static

from core.errors import ParqctlError
from core.migration.plan import LEGACY_VENUE
from core.store.layout import Venue
from tui.navigation import Popup


@dataclass(frozen=True)
class PlanChoice:
    venue: Venue
    intervals: list[str]


class PlanDialog(Popup[PlanChoice | None]):
    """Dismisses with the venue and intervals to plan, or None; j/k move in the list of
    intervals once it has the focus."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    PlanDialog { align: center middle; }
    PlanDialog > Vertical {
        width: 76; max-width: 95%; height: auto; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    PlanDialog #plan-title { text-style: bold; margin-bottom: 1; }
    PlanDialog Input { margin-bottom: 1; }
    PlanDialog SelectionList { height: auto; max-height: 8; }
    PlanDialog #plan-check { margin-top: 1; }
    PlanDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    PlanDialog Button { margin-left: 2; }
    """

    def __init__(self, legacy: list[str], planned: dict[str, set[str]], venue: Venue) -> None:
        """``legacy``: intervals with legacy files; ``planned``: venue id -> its planned
        intervals; ``venue``: the one proposed."""
        super().__init__()
        self.legacy, self.planned, self.venue = legacy, planned, venue

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Plan a migration", id="plan-title")
            yield Static("Venue (market:source) the partitioned files go to:")
            yield Input(self.venue.id, id="plan-venue", compact=True)
            yield Static("Legacy intervals to plan (tab, then space toggles):")
            planned = self.planned.get(self.venue.id, set())
            yield SelectionList[str](
                *((iv, iv, iv not in planned) for iv in self.legacy),
                id="plan-intervals",
                compact=True,
            )
            yield Static("", id="plan-check")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Plan", id="plan", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._check()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._check()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        self._check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "plan":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _choice(self) -> tuple[PlanChoice | None, str]:
        """The choice, or None; and what planning it writes or why it cannot be planned."""
        text = self.query_one(Input).value
        try:
            venue = Venue.parse(text)
        except ParqctlError as exc:
            return None, f"✗ {exc.one_line()}"
        intervals = list(self.query_one(SelectionList).selected)
        planned = self.planned.get(venue.id, set())
        if not intervals and set(self.legacy) <= planned:
            return None, f"✗ every legacy interval is planned for {venue.id} already"
        if not intervals:
            return None, "✗ select at least one interval"
        if venue != LEGACY_VENUE and not planned:
            return None, (
                f"✗ {venue.id} has no legacy data: the legacy files hold the collector's "
                f"{LEGACY_VENUE.id} bars (the CLI's `migrate plan --force` plans it anyway)"
            )
        added = [iv for iv in intervals if iv not in planned]
        kept = [iv for iv in intervals if iv in planned]
        if not added:
            return None, f"✗ {', '.join(kept)} planned for {venue.id} already: nothing to add"
        line = (
            f"Writes migration_plan.json only: adds {', '.join(added)} for "
            f"{venue.id} (data/{venue.market}/{venue.source}/stocks_<interval>)."
        )
        if kept:
            line += f" Already planned, kept as they are: {', '.join(kept)}."
        return PlanChoice(venue, intervals), line

    def _check(self) -> None:
        choice, line = self._choice()
        self.query_one("#plan-check", Static).update(line)
        self.query_one("#plan", Button).disabled = choice is None

    def _submit(self) -> None:
        choice, _ = self._choice()
        if choice is not None:
            self.dismiss(choice)
