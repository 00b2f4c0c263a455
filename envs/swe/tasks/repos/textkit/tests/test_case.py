import pytest
from textkit import split_words, to_camel, to_kebab, to_pascal, to_snake, to_title


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("helloWorld", ["hello", "World"]),
        ("user_id-value", ["user", "id", "value"]),
        ("version2Update", ["version", "2", "Update"]),
        ("userID", ["user", "ID"]),
    ],
)
def test_split_words(text, words):
    assert split_words(text) == words


def test_to_snake():
    assert to_snake("backgroundColor") == "background_color"
    assert to_snake("Already snake_case") == "already_snake_case"


def test_to_kebab():
    assert to_kebab("backgroundColor") == "background-color"


def test_to_pascal_and_camel():
    assert to_pascal("user account id") == "UserAccountId"
    assert to_camel("User account ID") == "userAccountId"


def test_to_title():
    assert to_title("the lord of the rings") == "The Lord of the Rings"
    assert to_title("a tale OF two cities") == "A Tale of Two Cities"
