"""The API key never shows: not in reprs, dumps, serialised models, traces or errors."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from langchain_core.exceptions import ModelAuthenticationError
from langchain_core.load import dumpd, dumps, load

from langchain_holysheep import ChatHolySheep, HolySheepEmbeddings

SECRET = "hs-do-not-print-0123456789"


@pytest.fixture
def model(base_url: str) -> ChatHolySheep:
    return ChatHolySheep(api_key=SECRET, base_url=base_url, model="gpt-4.1", max_retries=0)


def test_not_in_reprs_or_dumps(model: ChatHolySheep, base_url: str) -> None:
    embeddings = HolySheepEmbeddings(model="text-embedding-3-small", api_key=SECRET)
    texts = [
        repr(model),
        str(model),
        repr(model.model_dump()),
        model.model_dump_json(),
        json.dumps(dumpd(model)),
        dumps(model),
        dumps(model, pretty=True),
        repr(model._identifying_params),
        repr(model._get_invocation_params()),
        repr(model._get_ls_params()),
        repr(model._client_config()),
        repr(model._sync_client()),
        repr(model.bind_tools([]).with_config(run_name="x")),
        repr(embeddings),
        embeddings.model_dump_json(),
    ]
    for text in texts:
        assert SECRET not in text


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_serialised_model_loads_back_with_the_key_from_the_environment(
    model: ChatHolySheep, monkeypatch: pytest.MonkeyPatch
) -> None:
    serialised = dumps(model)
    assert '"HOLYSHEEP_API_KEY"' in serialised
    monkeypatch.setenv("HOLYSHEEP_API_KEY", SECRET)
    again = load(
        json.loads(serialised),
        allowed_objects=[ChatHolySheep],
        valid_namespaces=["langchain_holysheep"],
        secrets_from_env=True,
    )
    assert isinstance(again, ChatHolySheep)
    assert again.api_key is not None and again.api_key.get_secret_value() == SECRET
    assert (again.model, again.base_url) == (model.model, model.base_url)
    mapped = load(
        dumpd(model),
        allowed_objects=[ChatHolySheep],
        valid_namespaces=["langchain_holysheep"],
        secrets_map={"HOLYSHEEP_API_KEY": SECRET},
    )
    assert mapped.asdict() == model.asdict()


def test_not_in_a_refused_request(base_url: str, api_key: str) -> None:
    # The emulator accepts only its own key: ours is refused with a 401.
    assert api_key != SECRET
    model = ChatHolySheep(api_key=SECRET, base_url=base_url, max_retries=0)
    with pytest.raises(ModelAuthenticationError) as caught:
        model.invoke("hi")
    _assert_clean(caught.value)


def test_not_in_a_configuration_error() -> None:
    bad = SECRET + " \n"
    with pytest.raises(ValueError) as caught:
        ChatHolySheep(api_key=bad)
    assert "whitespace" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value.args)


def _assert_clean(err: BaseException) -> None:
    seen: list[Any] = []
    chain: BaseException | None = err
    while chain is not None:
        seen += [str(chain), repr(chain), chain.args, vars(chain)]
        chain = chain.__cause__
    assert SECRET not in repr(seen)
    assert SECRET.encode() not in pickle.dumps(err)
