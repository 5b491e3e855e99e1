"""The ensemble members' settings: which preprocessing, class shift and reflection each one uses.

A member is one view of the training table. Its setting combines
- `preprocessing`: the transform of the numeric columns (see `pfn.tabular.preprocessing`);
- `class_shift`: for a classifier, the network sees class `c` (an index into `classes_`) as
  label `(c + class_shift) % n_classes`, a cyclic shift undone on the output. The network
  reads labels as numbers, so one member depends on the class order; shifts measured as good
  as random permutations on six tables and, unlike them, never repeat;
- `reflect`: whether the transformed numeric columns are negated. A reflected member is a
  little weaker on its own (R^2 0.01 to 0.04 lower on three regression tables), so
  reflection comes last: it is what makes a regressor's 4th member differ from its 1st.
The network is exactly equivariant to the order of the context rows, so row order never
makes members differ. A per-feature model is equivariant to the order of the features too; a
row-token model (`pad_standardised`) reads features by position, so there each member also
sees the features in its own random order (drawn by the estimator; on the 11 classification
choosing tables with a row-token model, 4 members: mean ROC AUC 0.8805 against 0.8753 and log
loss 0.692 against 0.725 without the shuffle).

`member_settings` lays the settings out so that the first `3 * 2 * n_classes` members (6 for
a regressor, where `n_classes` is 1) all differ: preprocessing cycles fastest, the class
shift is offset per preprocessing kind so that the first members also see different class
orders, and reflection starts once every (preprocessing, shift) pair has been used. Beyond
that count settings repeat, and repeated members differ only where rows or features are
subsampled.
"""

from __future__ import annotations

from dataclasses import dataclass

from pfn.tabular.preprocessing import PREPROCESSING


@dataclass(frozen=True)
class MemberSetting:
    """What makes one ensemble member differ from the others (see the module docstring)."""

    preprocessing: str
    class_shift: int
    reflect: bool


def distinct_settings(n_classes: int) -> int:
    """How many members can have pairwise different settings: `3 * 2 * n_classes`."""
    return len(PREPROCESSING) * 2 * n_classes


def member_settings(n_members: int, n_classes: int = 1) -> list[MemberSetting]:
    """The settings of `n_members` members; the first `distinct_settings(n_classes)` are pairwise different.

    Args:
        n_members: Ensemble size.
        n_classes: Number of classes of a classifier, 1 for a regressor (no class shift).

    Returns:
        `n_members` settings, member `i` at index `i`.
    """
    n_kinds = len(PREPROCESSING)
    settings = []
    for i in range(n_members):
        kind, rounds = i % n_kinds, i // n_kinds
        settings.append(MemberSetting(preprocessing=PREPROCESSING[kind], class_shift=(rounds + kind) % n_classes,
                                      reflect=(rounds // n_classes) % 2 == 1))
    return settings
