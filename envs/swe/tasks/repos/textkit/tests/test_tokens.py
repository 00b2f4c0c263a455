import pytest
from textkit import Tokenizer, ngrams, sentences, tokenize, word_frequencies


def test_tokenize_keeps_contractions():
    assert tokenize("Don't panic, it's 42!") == ["Don't", "panic", "it's", "42"]


def test_tokenize_lowercase():
    assert tokenize("Hello World", lowercase=True) == ["hello", "world"]


def test_sentences():
    assert sentences("Hi there. Fruit, e.g. apples, is here! Really?") == [
        "Hi there.",
        "Fruit, e.g. apples, is here!",
        "Really?",
    ]


def test_sentences_without_final_punctuation():
    assert sentences("One. Two") == ["One.", "Two"]


def test_ngrams_longer_than_input():
    assert ngrams(["a", "b"], 3) == []


def test_ngrams_rejects_zero():
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


def test_tokenizer_stopwords_and_min_length():
    tok = Tokenizer(stopwords={"the", "a"}, min_length=2)
    assert tok.tokenize("The cat sat on a mat, I think") == ["cat", "sat", "on", "mat", "think"]


def test_tokenizer_keep_case():
    tok = Tokenizer(stopwords={"the"}, lowercase=False)
    assert tok.tokenize("The cat the end") == ["The", "cat", "end"]


def test_word_frequencies():
    assert word_frequencies("the cat and the hat", stopwords=["and"]) == [("the", 2), ("cat", 1), ("hat", 1)]


def test_word_frequencies_top():
    assert word_frequencies("b a b c b a", top=2) == [("b", 3), ("a", 2)]
