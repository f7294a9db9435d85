"""Lure and pressure terms of illegal proxy rights-defence and debt-relief agents, as scoring features.

The terms come from regulators' public risk warnings against "proxy rights-defence" (代理维权) and from an
industry association's 2024 content guide, which grades agent advertising in two levels (see
``shared/DOMAIN.md``): level 1 names the agent's service itself (专业反催收, 逾期铲单, 代理免除债务,
征信修复/洗白/铲单, 提前全额退保); level 2 names the relief it promises (停息挂账, 债务优化, 负债上岸,
个性化分期, 代理退保, 不成功不收费). A third group is the pressure agents' templates apply (threats to
complain to regulators, go to the media, "后果自负").

A real customer may write any of these words, so a hit is a feature that adds a little to a score and
never a verdict by itself (``scoring.py`` caps the lexicon's share below the "verify" route).

Matching runs on the NFKC-folded text with spaces removed, by regular expression, so Chinese needs no
word segmentation. Where words are needed (the words a ring's texts share, in its evidence) ``jieba``
segments with these terms added to its dictionary, so a lure phrase stays one word.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Term:
    name: str  # the canonical term, reported in signals
    pattern: str  # regular expression over the folded text
    level: int  # 1 service of an agent, 2 promised relief, 3 pressure
    group: str


def _t(name: str, level: int, group: str, pattern: str | None = None) -> Term:
    return Term(name, pattern or re.escape(name), level, group)


TERMS: tuple[Term, ...] = (
    # level 1: the agent's service (industry guide level 1; regulators' warnings)
    _t("代理维权", 1, "agent_service"),
    _t("代理退保", 1, "agent_service"),
    _t("代理免除债务", 1, "agent_service"),
    _t("专业反催收", 1, "agent_service", "(专业)?反催收"),
    _t("逾期铲单", 1, "agent_service", "(逾期)?铲单"),
    _t("征信修复", 1, "credit_repair", "征信修复|修复征信"),
    _t("征信洗白", 1, "credit_repair", "征信洗白|洗白征信"),
    _t("不成功不收费", 1, "agent_service", "不成功不收费|无效退款|成功后收费"),
    _t("credit repair", 1, "credit_repair", "creditrepair|repair(my|your)?credit"),
    _t("no win no fee", 1, "agent_service", "nowinnofee"),
    # level 2: the relief promised or demanded
    _t("停息挂账", 2, "debt_relief"),
    _t("债务清零", 2, "debt_relief"),
    _t("债务优化", 2, "debt_relief", "债务优化|优化债务"),
    _t("债务协商", 2, "debt_relief", "债务协商|协商还款|协商分期"),
    _t("债务置换", 2, "debt_relief"),
    _t("负债上岸", 2, "debt_relief", "负债上岸|债务上岸"),
    _t("个性化分期", 2, "debt_relief", "个性化分期|延期定制"),
    _t("减免利息", 2, "debt_relief", "减免(全部)?(利息|息费|罚息|违约金)"),
    _t("全额退保", 2, "full_refund", "(提前)?全额退保"),
    _t("全额退款", 2, "full_refund", "全额退款|退还(已收取的)?(全部|所有)(利息|费用)"),
    _t("投顾退费", 2, "full_refund"),
    _t("消除逾期记录", 2, "credit_repair", "(消除|删除)(所有)?(逾期|不良)记录"),
    _t("debt relief", 2, "debt_relief", "debtrelief|debtforgiveness|stopinterest|waive(all)?(interest|fees)"),
    _t("full refund", 2, "full_refund", "fullrefund|refund(all|every)"),
    # level 3: pressure in the template
    _t("投诉到监管", 3, "pressure", "(向|到)(金融)?监管|监管总局|银保监|人民银行|12378"),
    _t("媒体曝光", 3, "pressure", "媒体曝光|向媒体"),
    _t("后果自负", 3, "pressure"),
    _t("regulator", 3, "pressure", "complain(ed)?tothe(regulator|media)|financialregulator"),
)

_SPACE = re.compile(r"\s+")
_COMPILED = [(term, re.compile(term.pattern)) for term in TERMS]
_ANY = re.compile("|".join(f"(?:{term.pattern})" for term in TERMS))  # one pass: most texts have none


def fold(text: str) -> str:
    return _SPACE.sub("", unicodedata.normalize("NFKC", text).casefold())


def matches(text: str) -> tuple[str, ...]:
    """The terms found in ``text`` (canonical names, in ``TERMS`` order)."""
    folded = fold(text)
    if not _ANY.search(folded):
        return ()
    return tuple(term.name for term, pattern in _COMPILED if pattern.search(folded))


LEVEL_OF = {term.name: term.level for term in TERMS}
GROUP_OF = {term.name: term.group for term in TERMS}

_tokenizer: Any = None
_tokenizer_lock = threading.Lock()


def _jieba() -> Any:
    """A jieba tokenizer with the lexicon in its dictionary (built once, on first use: about a second)."""
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            for term in TERMS:
                if not term.name.isascii():
                    tokenizer.add_word(term.name, freq=100_000)
            _tokenizer = tokenizer
        return _tokenizer


def shared_words(texts: Sequence[str], share: float = 0.6, limit: int = 30) -> list[str]:
    """Words (two characters or more) found in at least ``share`` of ``texts``: what a ring's template
    says, for its evidence. Digits are left out (they are the slots a template fills)."""
    if not texts:
        return []
    tokenizer = _jieba()
    counts: Counter[str] = Counter()
    for text in texts:
        words = {w for w in tokenizer.lcut(unicodedata.normalize("NFKC", text)) if len(w.strip()) >= 2}
        counts.update(w for w in words if not any(c.isdigit() for c in w) and re.search(r"\w", w))
    need = max(1, int(share * len(texts) + 0.999))
    common = [w for w, c in counts.most_common() if c >= need]
    return common[:limit]
