"""parqctl's Textual themes: a dark and a light one, on the Okabe-Ito palette.

Success, warning and error use blue, orange and vermillion, which stay apart for the
common forms of colour blindness; every state is also shown with a glyph.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

STYLESHEET = Path(__file__).with_name("parqctl.tcss")

DARK = Theme(
    name="parqctl-dark",
    primary="#56B4E9",
    secondary="#CC79A7",
    accent="#F0E442",
    success="#56B4E9",
    warning="#E69F00",
    error="#D55E00",
    foreground="#E6E6E6",
    background="#101418",
    surface="#182028",
    panel="#22303C",
    dark=True,
)

LIGHT = Theme(
    name="parqctl-light",
    primary="#0072B2",
    secondary="#CC79A7",
    accent="#B8860B",
    success="#0072B2",
    warning="#B35C00",
    error="#C13C00",
    foreground="#1A1A1A",
    background="#FAFAF7",
    surface="#EFEFEA",
    panel="#E0E4E8",
    dark=False,
)

THEMES = {"dark": DARK, "light": LIGHT}
