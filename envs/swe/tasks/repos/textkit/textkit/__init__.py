"""textkit: small, dependency-free string utilities."""

from textkit._unicode import fold, normalize_whitespace, strip_accents
from textkit.case import split_words, to_camel, to_kebab, to_pascal, to_snake, to_title
from textkit.distance import closest, hamming, levenshtein, similarity
from textkit.slug import slugify
from textkit.tokens import Tokenizer, ngrams, sentences, tokenize, word_frequencies
from textkit.wrap import fill, indent, truncate, wrap

__all__ = [
    "Tokenizer",
    "closest",
    "fill",
    "fold",
    "hamming",
    "indent",
    "levenshtein",
    "ngrams",
    "normalize_whitespace",
    "sentences",
    "similarity",
    "slugify",
    "split_words",
    "strip_accents",
    "to_camel",
    "to_kebab",
    "to_pascal",
    "to_snake",
    "to_title",
    "tokenize",
    "truncate",
    "word_frequencies",
    "wrap",
]

__version__ = "0.4.1"
