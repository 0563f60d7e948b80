"""Concurrent requests share one predict call, and each still gets the answer for its own rows."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelship_server.batching import Batcher, Result
from modelship_server.predictor import SklearnPredictor
from tests.serving.support import SLOW_TYPE, Iris, ServerFactory, slow_model, v2_request


def test_concurrent_requests_are_merged_into_one_predict_call(
    servers: ServerFactory, iris: Iris, tmp_path: Path
) -> None:
    # Given a model whose predict takes 0.3 s (so requests pile up behind the first one),
    marker = tmp_path / "batches"
    model = slow_model(iris, tmp_path / "slow.skops", delay_s=0.3, marker=marker)
    server = servers.start(
        "--model-uri",
        str(model),
        "--trusted-type",
        SLOW_TYPE,
        "--model-name",
        "iris",
        "--model-version",
        "1",
        "--workers",
        "1",
        "--max-batch-size",
        "32",
    )
    # when sixteen clients each send a different flower at the same time,
    rows = iris.x[::9][:16]
    with ThreadPoolExecutor(len(rows)) as pool:
        responses = list(
            pool.map(lambda row: server.post_json("/v2/models/iris/infer", v2_request([row])), rows.tolist())
        )
    # then every client gets the class of its own flower,
    assert [r.json()["outputs"][0]["data"][0] for r in responses] == iris.model.predict(rows).tolist()
    # and fewer predict calls than requests were made: the batch-size histogram shows a batch above 1.
    batches = server.metric("model_batch_size_count", model_version="1")
    assert batches < 16
    assert server.metric("model_batch_size_sum", model_version="1") == 16
    assert server.metric("model_batch_size_bucket", le="1.0", model_version="1") < batches
    assert max(int(n) for n in marker.read_text().split()) > 1


class _Loop:
    """Runs batcher scenarios on a real event loop with an in-process model."""

    def __init__(self, iris: Iris, **batcher_args: Any) -> None:
        self.iris = iris
        self.batches: list[int] = []
        self.batcher_args = {"max_batch_size": 32, "max_wait_s": 0.0, **batcher_args}

    def run(self, requests: list[np.ndarray], outputs: tuple[str, ...] = ("predict",)) -> list[Result]:
        async def scenario() -> list[Result]:
            loop = asyncio.get_running_loop()
            batcher = Batcher(
                SklearnPredictor(self.iris.model),
                loop,
                offload="never",
                on_batch=lambda size, _: self.batches.append(size),
                **self.batcher_args,
            )
            futures = [loop.create_future() for _ in requests]
            for rows, future in zip(requests, futures, strict=True):
                batcher.submit(rows, outputs, future.set_result)
            return list(await asyncio.gather(*futures))

        return asyncio.run(scenario())


def test_requests_submitted_together_form_one_batch(iris: Iris) -> None:
    loop = _Loop(iris)
    results = loop.run([iris.x[i : i + 1] for i in (0, 50, 100)])
    assert loop.batches == [3]
    assert [r["predict"].tolist() for r in results] == [[0], [1], [2]]  # type: ignore[index]


def test_a_batch_never_exceeds_the_maximum(iris: Iris) -> None:
    loop = _Loop(iris, max_batch_size=4)
    loop.run([iris.x[i : i + 1] for i in range(10)])
    assert loop.batches == [4, 4, 2]


def test_a_lone_request_does_not_wait_for_company(iris: Iris) -> None:
    # Given a generous wait for others, a request alone in the queue is still predicted at once.
    loop = _Loop(iris, max_wait_s=5.0)
    started = asyncio.run(_now())
    loop.run([iris.x[:1]])
    assert asyncio.run(_now()) - started < 1.0
    assert loop.batches == [1]


def test_rows_of_many_requests_come_back_to_their_own_request(iris: Iris) -> None:
    # Given requests of different sizes batched together, each gets exactly its own rows' outputs.
    loop = _Loop(iris)
    requests = [iris.x[0:3], iris.x[50:51], iris.x[100:105]]
    results = loop.run(requests, outputs=("predict", "predict_proba"))
    for rows, result in zip(requests, results, strict=True):
        assert isinstance(result, dict)
        np.testing.assert_array_equal(result["predict"], iris.model.predict(rows))
        np.testing.assert_allclose(result["predict_proba"], iris.model.predict_proba(rows))


def test_a_request_the_model_refuses_fails_alone(iris: Iris) -> None:
    # Given one request with NaN among good ones, only that one gets the model's error.
    loop = _Loop(iris)
    bad = iris.x[:1].copy()
    bad[0, 2] = np.nan
    results = loop.run([iris.x[:1], bad, iris.x[100:101]])
    assert isinstance(results[1], Exception) and "NaN" in str(results[1])
    assert [results[0]["predict"].tolist(), results[2]["predict"].tolist()] == [[0], [2]]  # type: ignore[index]


async def _now() -> float:
    return asyncio.get_running_loop().time()


@pytest.mark.parametrize("offload", ["always", "never"])
def test_predict_gives_the_same_answers_inline_and_on_the_helper_thread(iris: Iris, offload: str) -> None:
    async def scenario() -> list[Result]:
        loop = asyncio.get_running_loop()
        batcher = Batcher(
            SklearnPredictor(iris.model),
            loop,
            max_batch_size=8,
            max_wait_s=0.0,
            on_batch=lambda *_: None,
            offload=offload,
        )
        futures = [loop.create_future() for _ in range(20)]
        for i, future in enumerate(futures):
            batcher.submit(iris.x[i * 7 : i * 7 + 1], ("predict",), future.set_result)
        results = list(await asyncio.gather(*futures))
        batcher.close()
        return results

    results = asyncio.run(scenario())
    assert [r["predict"][0] for r in results] == iris.model.predict(iris.x[::7][:20]).tolist()  # type: ignore[index]
