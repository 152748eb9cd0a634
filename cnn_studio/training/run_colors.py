"""Each run's colour, fixed by its run number, so a run keeps its hue from the moment it starts to when
it is shown as an overlay next to later runs (and in the run list's swatches).

The hues are Okabe and Ito's colour-blind safe set (distinct under the common colour-vision deficiencies)
without its yellow, which cannot be read on the plots' white background. The darkest come first: most
projects compare two or three runs. A run's training curve is drawn solid, its validation curve dashed,
in the same hue; the current run is told apart by thicker lines and larger points, never by another hue.

The Runs tab does not use these colours on purpose: its comparison colours two roles, A and B, that the
whole comparison is about ("B − A", "right in A, wrong in B"), and its table numbers the kept run folders,
which need not match the Train tab's run numbers (runs not kept, folders deleted), so a run-number hue
there could name the wrong run.
"""

from __future__ import annotations

RUN_COLORS = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
)


def run_color(number: int) -> str:
    """The colour of run ``number`` (1-based); after the seventh run the colours come round again."""
    return RUN_COLORS[(number - 1) % len(RUN_COLORS)]
