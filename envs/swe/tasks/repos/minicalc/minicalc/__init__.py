"""minicalc: a tiny, safe calculator language."""

from minicalc.calculator import Calculator, evaluate
from minicalc.errors import CalcError, EvalError, ParseError, UndefinedNameError
from minicalc.evaluator import Evaluator
from minicalc.parser import parse
from minicalc.tokenizer import Token, tokenize

__all__ = [
    "CalcError",
    "Calculator",
    "EvalError",
    "Evaluator",
    "ParseError",
    "Token",
    "UndefinedNameError",
    "evaluate",
    "parse",
    "tokenize",
]

__version__ = "0.9.0"
