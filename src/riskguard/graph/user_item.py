"""Suspiciousness of users on a user–item bipartite graph (who reviewed, rated or bought which item) when the
graph is all there is: no texts, ratings or times.

Each score is a number per user, higher meaning more suspicious; the direction of each is fixed by what
it models, never by the labels it is later measured against (docs/graph.md, "YelpChi").

- ``dense_block``: Fraudar's peel score with users as rows (``dense.py``): users that sit in a dense
  block of users × items. Finds fraud that is *dense* (sock puppets reviewing the same targets); blind to
  single-review accounts, which bring one edge each.
- ``inactivity``: ``1 / items`` — throwaway accounts act once (review filters weigh a reviewer's history).
- ``item_singleton_share``: the mean, over the user's items, of the share of each item's users who
  touched nothing else — a campaign for an item arrives from throwaway accounts.
- ``item_block``: Fraudar with items as rows and users as columns, so that each user's edges weigh
  ``1 / log(items + 5)`` (the camouflage-resistant column weight: prolific users count little); the
  mean, over the user's items, of the item's peel score. Meant to find items in dense blocks of
  low-activity users, it cannot: a one-edge user never raises a block's density above its one edge's
  weight, so the blocks are still prolific users on popular items, and the item scores come out coarse
  (on YelpChi five distinct values, Spearman 0.68 with the singleton share). Kept because it was
  measured as planned; ``item_singleton_share`` says the same thing directly.
- ``inactive_on_suspect_items``: ``inactivity × item_singleton_share``.

With known fraud, ``graph evaluate`` adds association from the training fraudsters (``association`` and
``association_per_degree``) and the supervised model.

Cost: a few ``bincount`` passes and two Fraudar runs (``dense.py``), linear in the edges.
"""

from __future__ import annotations

import numpy as np

from riskguard.graph.dense import fraudar
from riskguard.graph.encode import distinct

UNSUPERVISED = ("dense_block", "inactivity", "item_singleton_share", "item_block", "inactive_on_suspect_items")


def _per_user(users: np.ndarray, items: np.ndarray, n_users: int, item_score: np.ndarray) -> np.ndarray:
    """The mean of ``item_score`` over each user's items (distinct user–item edges)."""
    degree = np.bincount(users, minlength=n_users)
    total = np.bincount(users, weights=item_score[items], minlength=n_users)
    return np.divide(total, degree, out=np.zeros(n_users), where=degree > 0)


def _distinct_edges(users: np.ndarray, items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = distinct(users.astype(np.int64) * n_items + items.astype(np.int64))
    return pairs // n_items, pairs % n_items


def unsupervised_scores(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, *, blocks: int = 10
) -> dict[str, np.ndarray]:
    """Every score of ``UNSUPERVISED`` for users ``0..n_users-1`` of the edges ``(users[i], items[i])``."""
    users, items = _distinct_edges(users, items, n_items)
    degree = np.bincount(users, minlength=n_users)
    item_degree = np.bincount(items, minlength=n_items)
    inactivity = np.divide(1.0, degree, out=np.zeros(n_users), where=degree > 0)
    singletons = np.bincount(items, weights=(degree == 1)[users].astype(np.float64), minlength=n_items)
    singleton_share = np.divide(singletons, item_degree, out=np.zeros(n_items), where=item_degree > 0)
    item_peel = fraudar(items, users, n_items, n_users, blocks=blocks).peel_score
    share = _per_user(users, items, n_users, singleton_share)
    return {
        "dense_block": fraudar(users, items, n_users, n_items, blocks=blocks).peel_score,
        "inactivity": inactivity,
        "item_singleton_share": share,
        "item_block": _per_user(users, items, n_users, item_peel),
        "inactive_on_suspect_items": inactivity * share,
    }
