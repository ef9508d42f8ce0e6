"""A deterministic Korean test corpus for comparing tokenizers (no data files committed).

Lines mix Hangul words and particles, numbers, Latin words, punctuation, emoji, compatibility
jamo (ㅋㅋ, ㅠㅠ), full-width and Hanja characters, odd whitespace, inline special tokens and
some very long lines. The same ``seed`` always gives the same lines.

Example:
    >>> lines = korean_corpus(3, seed=1)
    >>> len(lines), lines == korean_corpus(3, seed=1)
    (3, True)
"""

from __future__ import annotations

import random
from typing import Callable

__all__ = ["korean_corpus", "pair_corpus"]

NOUNS = ("한국어", "모델", "공유", "학습", "데이터", "문장", "서울", "부산", "대한민국", "날씨", "컴퓨터",
         "인공지능", "자연어", "처리", "연구", "대학교", "학생", "선생님", "친구", "가족", "회사", "시장",
         "경제", "정치", "사회", "문화", "음식", "김치", "비빔밥", "커피", "영화", "음악", "노래", "사람",
         "시간", "오늘", "내일", "어제", "아침", "저녁", "뉴스", "기사", "정부", "국회", "대통령", "선거",
         "축구", "야구", "경기", "선수", "감독", "팬", "스마트폰", "인터넷", "게임", "프로그램", "개발자",
         "토크나이저", "버트", "변환", "체크포인트", "텐서", "행렬", "벡터", "실험", "결과", "논문", "책",
         "도서관", "지하철", "버스", "택시", "공항", "비행기", "바다", "산", "강", "하늘", "봄", "여름",
         "가을", "겨울", "꽃", "나무", "고양이", "강아지", "병원", "의사", "약", "건강", "운동", "여행",
         "뷁", "똠양꿍", "햏", "갏", "쀍")
PARTICLES = ("", "", "은", "는", "이", "가", "을", "를", "의", "에", "에서", "으로", "로", "와", "과", "도",
             "만", "까지", "부터", "에게", "한테", "처럼", "보다")
VERBS = ("합니다", "했습니다", "한다", "했다", "하고", "해서", "하는", "입니다", "이다", "있습니다", "없다",
         "좋아요", "싫어요", "갑니다", "왔어요", "먹었다", "봤습니다", "공유합니다", "만들었다", "되었다",
         "할까요?", "하세요!", "했지만", "하면서", "이에요", "같아요", "몰라요", "알겠습니다")
LATIN = ("BERT", "KoBERT", "transformers", "PyTorch", "TensorFlow", "GPU", "CPU", "Hello", "world",
         "OpenAI", "NLP", "AI", "iPhone", "YouTube", "Seoul", "Korea", "API", "JSON", "http://example.com",
         "e-mail", "user@example.com", "COVID-19", "K-pop", "BTS", "ok", "lol", "McDonald's", "naïve", "café")
PUNCT = (".", ",", "!", "?", "...", "…", "~", "!!", "?!", "(", ")", "[", "]", "\"", "'", "“", "”", "‘", "’",
         "·", "-", "—", ":", ";", "/", "%", "#", "@", "&", "*", "+", "=", "<", ">", "「", "」", "『", "』")
EMOJI = ("😀", "😂", "🥰", "👍", "🙏", "🔥", "❤️", "✨", "🎉", "😭", "🤔", "👀", "💯", "🇰🇷", "👨‍👩‍👧", "☕")
JAMO = ("ㅋㅋ", "ㅋㅋㅋ", "ㅋㅋㅋㅋㅋ", "ㅎㅎ", "ㅠㅠ", "ㅜㅜ", "ㄱㄱ", "ㅇㅇ", "ㄴㄴ", "ㅇㅋ", "ㄷㄷ", "ㅂㅂ")
ODD = ("ＡＢＣ", "１２３", "①", "㈜", "㎏", "ℓ", "Ⅻ", "漢字", "韓國", "大韓民國", "ﾊﾝｸﾞﾙ", "Ｋｏｒｅａ",
       "\u00a0", "\u200b", "\t", "  ", "\u3000", "ⓒ", "™", "½", "x²", "ﬁ", "Å", "é")
SPECIALS = ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]")


def _number(rng: random.Random) -> str:
    makers: tuple[Callable[[], str], ...] = (
        lambda: str(rng.randint(0, 9)), lambda: str(rng.randint(10, 99999)),
        lambda: f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}", lambda: f"{rng.random() * 100:.2f}",
        lambda: f"{rng.randint(1990, 2030)}년 {rng.randint(1, 12)}월 {rng.randint(1, 28)}일",
        lambda: f"{rng.randint(1, 100)}%", lambda: f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        lambda: f"{rng.randint(1, 500)}개", lambda: f"{rng.randint(1, 99)}명")
    return rng.choice(makers)()


def _korean_phrase(rng: random.Random) -> str:
    return rng.choice(NOUNS) + rng.choice(PARTICLES) + (" " + rng.choice(VERBS) if rng.random() < 0.4 else "")


# (weight, maker) pairs: what a "word" of a line is drawn from.
_WORDS: tuple[tuple[float, Callable[[random.Random], str]], ...] = (
    (55, _korean_phrase),
    (8, _number),
    (8, lambda rng: rng.choice(LATIN)),
    (10, lambda rng: rng.choice(PUNCT)),
    (4, lambda rng: rng.choice(EMOJI)),
    (4, lambda rng: rng.choice(JAMO)),
    (4, lambda rng: rng.choice(ODD)),
    (2, lambda rng: rng.choice(SPECIALS)),
    (5, lambda rng: rng.choice(VERBS)),
)
_WEIGHTS = [w for w, _ in _WORDS]
_MAKERS = [m for _, m in _WORDS]
_GLUE = ("", " ", " ", " ", " ", " ", "  ")  # how words are joined: often a space, sometimes nothing


def _line(rng: random.Random, n_words: int) -> str:
    makers = rng.choices(_MAKERS, weights=_WEIGHTS, k=n_words)
    parts = []
    for maker in makers:
        parts.append(maker(rng))
        parts.append(rng.choice(_GLUE))
    return "".join(parts).strip(" ") if rng.random() < 0.9 else "".join(parts)


def korean_corpus(n_lines: int = 10_000, *, seed: int = 20240506, long_every: int = 250) -> list[str]:
    """``n_lines`` deterministic test lines; every ``long_every``-th line has ~1,500-3,000 words.

    Example:
        >>> any("ㅋㅋ" in line for line in korean_corpus(200))
        True
    """
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        if long_every and i % long_every == long_every - 1:
            lines.append(_line(rng, rng.randint(1500, 3000)))
        elif i % 97 == 13:
            lines.append(rng.choice(("", " ", "   ", "\t", "ㅋ", "😀", "[MASK]", "[CLS][SEP]", " [SEP] ")))
        else:
            lines.append(_line(rng, rng.randint(1, 40)))
    return lines


def pair_corpus(n_pairs: int = 2_000, *, seed: int = 7) -> list[tuple[str, str]]:
    """Sentence pairs (question-like first, passage-like second) for pair encoding tests.

    Example:
        >>> len(pair_corpus(5))
        5
    """
    rng = random.Random(seed)
    return [(_line(rng, rng.randint(1, 25)), _line(rng, rng.randint(5, 120))) for _ in range(n_pairs)]
