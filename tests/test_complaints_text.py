"""Templated-text matching: normalisation, shingles, datasketch-identical signatures, LSH bands, exact
similarity, personal-data masking and the lexicon."""

from __future__ import annotations

import numpy as np
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from riskguard.complaints import lexicon
from riskguard.complaints.pii import mask_text
from riskguard.complaints.text import Bands, MinHasher, jaccard, normalise, shingle_keys, shingle_table
from riskguard.complaints.textindex import TextIndex, band_keys, bucket_pairs

CHINESE = "本人因疫情失业无力偿还贵司借款元要求停息挂账否则向监管投诉我的账户扣款退款请尽快处理"
texts = st.lists(
    st.text(alphabet=st.sampled_from(list(CHINESE) + list("abcxyz 0123,。")), max_size=60), min_size=1, max_size=25
)


def test_normalise_folds_digits_punctuation_and_width() -> None:
    assert normalise("本人因疫情失业，无力偿还贵司借款36500元。") == "本人因疫情失业无力偿还贵司借款0元"
    assert normalise("ＡＢＣ  abc-123") == normalise("abc abc 9")


@settings(max_examples=40, deadline=None)
@given(texts)
def test_bulk_shingles_and_signatures_equal_one_at_a_time_and_datasketch(items: list[str]) -> None:
    norms = [normalise(t) for t in items]
    keys, offsets = shingle_table(norms)
    hasher = MinHasher(64)
    signatures = hasher.signatures(keys, offsets, chunk=16)
    for i, norm in enumerate(norms):
        own = shingle_keys(norm)
        assert np.array_equal(keys[offsets[i] : offsets[i + 1]], own)
        assert np.array_equal(signatures[i], hasher.signature(own).hashvalues)
    reference = MinHash(num_perm=64, seed=1, hashfunc=lambda v: v)  # datasketch's own update, affine32
    if len(norms[0]):
        from riskguard.complaints.text import fingerprints

        reference.update_batch(fingerprints(shingle_keys(norms[0])).tolist())
        assert np.array_equal(reference.hashvalues, signatures[0])


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list(CHINESE)), min_size=3, max_size=40),
    st.text(alphabet=st.sampled_from(list(CHINESE)), min_size=3, max_size=40),
)
def test_similarity_is_exact_jaccard_of_three_character_shingles(a: str, b: str) -> None:
    grams = lambda t: {t[i : i + 3] for i in range(len(t) - 2)}  # noqa: E731
    expected = len(grams(a) & grams(b)) / len(grams(a) | grams(b))
    assert jaccard(shingle_keys(a), shingle_keys(b)) == expected
    index = TextIndex(num_perm=64, lsh_threshold=0.5, template_similarity=0.7, per_bucket=8)
    first, second = index.add(a, 0, 0), index.add(b, 1, 0)
    if first != second:
        assert index.verify(first, [second])[0] == expected


def test_bulk_bands_find_the_pairs_datasketch_lsh_finds() -> None:
    rng = np.random.default_rng(3)
    base = "本人因疫情失业无力偿还贵司借款要求停息挂账否则向监管投诉"
    items = [base[: int(rng.integers(10, len(base)))] + "".join(rng.choice(list(CHINESE), 6)) for _ in range(60)]
    norms = [normalise(t) for t in items]
    keys, offsets = shingle_table(norms)
    hasher = MinHasher(64)
    bands = Bands.for_threshold(0.5, 64)
    signatures = hasher.signatures(keys, offsets)
    lsh = bands.index()
    for i in range(len(norms)):
        lsh.insert(i, hasher.lean(signatures[i]))
    expected = {
        tuple(sorted((i, j))) for i in range(len(norms)) for j in lsh.query(hasher.lean(signatures[i])) if j != i
    }
    found = {tuple(p) for p in bucket_pairs(band_keys(signatures, bands), all_pairs=1000).tolist()}
    assert found == expected and found


def test_text_index_incremental_groups_near_duplicates_and_not_others() -> None:
    index = TextIndex(num_perm=64, lsh_threshold=0.5, template_similarity=0.7, per_bucket=64)
    template = "本人因疫情失业，无力偿还贵司借款{}元。要求停息挂账，分60期偿还本金，否则向金融监管总局投诉。"
    first = index.add(template.format(36500), 0, 0)
    second = index.add(template.format(12800), 1, 10)  # the amount is a slot: the same normalised text
    third = index.add("本人系贵司借款人，" + template.format(900), 2, 20)
    other = index.add("App更新后无法登录，验证码收不到，影响正常使用。", 3, 30)
    assert first == second and third != first
    assert index.groups.find(third) == index.groups.find(first)
    assert index.groups.find(other) != index.groups.find(first)
    assert index.candidates(third) == [first]
    assert index.verify(third, [first, other])[0] >= 0.7 > index.verify(third, [first, other])[1]


def test_personal_data_in_texts_is_masked_and_amounts_are_not() -> None:
    text = "电话+86 138-1234-5678，身份证11010119900307123X，卡号6222021234567890123，邮箱li@qq.com，欠款36500元"
    out = mask_text(text)
    for secret in ("1234-5678", "11010119900307123X", "6222021234567890123", "li@qq.com"):
        assert secret not in out
    assert "36500元" in out and "电话" in out


def test_lexicon_matches_lures_and_jieba_keeps_them_whole() -> None:
    hits = lexicon.matches("我要求停息挂账、减免违约金，并征信修复，否则投诉到监管，后果自负。")
    assert {"停息挂账", "减免利息", "征信修复", "投诉到监管", "后果自负"} <= set(hits)
    assert lexicon.matches("上周在超市消费时被重复扣款，请退回。") == ()
    words = lexicon.shared_words(["本人要求停息挂账并且征信修复", "我要求停息挂账，征信修复", "请停息挂账"])
    assert "停息挂账" in words and "征信修复" in words
