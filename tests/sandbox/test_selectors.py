"""Label and field selector grammar, as apimachinery parses and matches it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nublado.sandbox.selectors import FieldSelector, LabelSelector, SelectorError

LABELS = {"app": "lab", "tier": "user", "nublado.lsst.io/user": "rachel", "size": "3"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=lab", True),
        ("app==lab", True),
        ("app = lab", True),
        ("app!=lab", False),
        ("app!=other", True),
        ("missing!=x", True),
        ("app in (lab, other)", True),
        ("app in (other)", False),
        ("app notin (other,x)", True),
        ("app notin (lab)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=lab,tier=user", True),
        ("app=lab,tier=admin", False),
        ("nublado.lsst.io/user=rachel", True),
        ("size>2", True),
        ("size<3", False),
        ("app in (lab),!missing,tier notin (admin)", True),
    ],
)
def test_label_selector_grammar(selector: str, matches: bool) -> None:
    assert LabelSelector.parse(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector",
    [
        "app=",
        "=lab",
        "app in lab",
        "app in (lab",
        "app=a b",
        "-bad=x",
        "app=lab,",
        "size>x",
        "app=~x",
    ],
)
def test_malformed_label_selectors_are_errors(selector: str) -> None:
    if selector == "app=":  # an empty value is valid: it matches the empty label value
        assert LabelSelector.parse(selector).matches({"app": ""})
        return
    with pytest.raises(SelectorError):
        LabelSelector.parse(selector)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
        min_size=1,
        max_size=5,
    )
)
def test_equality_selector_from_labels_round_trips(labels: dict[str, str]) -> None:
    selector = LabelSelector.from_labels(labels)
    reparsed = LabelSelector.parse(str(selector))
    assert reparsed == selector
    assert reparsed.matches(labels)
    assert not reparsed.matches({k: v + "x" for k, v in labels.items()})


def test_field_selector_on_pod_fields() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"nodeName": "node1"},
        "status": {"phase": "Running"},
    }
    selector = FieldSelector.parse("spec.nodeName=node1,status.phase!=Pending", "Pod")
    assert selector.matches(pod, "Pod")
    assert not FieldSelector.parse("status.phase=Pending", "Pod").matches(pod, "Pod")
    assert FieldSelector.parse("metadata.name==p", "Pod").equality("metadata.name") == "p"


def test_field_selector_refuses_unsupported_fields() -> None:
    with pytest.raises(SelectorError, match="field label not supported: spec.nodeName"):
        FieldSelector.parse("spec.nodeName=x", "ConfigMap")
    event = {"metadata": {"name": "e"}, "involvedObject": {"name": "rachel-nb"}}
    assert FieldSelector.parse("involvedObject.name=rachel-nb", "Event").matches(event, "Event")
