"""Where an LLM judge's completions come from: a local transformers model or an OpenAI-compatible server.

Both take a list of chat conversations and return, per conversation, the completion text or
the error that prevented one. The HTTP back end keeps a bounded number of requests in
flight, times each out, and retries transient failures (connection errors, timeouts, HTTP
429/5xx, malformed JSON) with exponential backoff; the API key is read from the environment
at call time and never stored.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from harness.core.errors import BenchError
from harness.judges.config import JudgeConfig
from harness.models.config import EMBEDDED_MODEL
from harness.models.resolve import load_model

Completion = str | Exception


class TransformersBackend:
    def __init__(self, config: JudgeConfig):

        self.config = config
        self.loaded = load_model(config.model or EMBEDDED_MODEL)
        self.n_params = sum(p.numel() for p in self.loaded.model.parameters())

    def complete(self, conversations: list[list[dict[str, str]]], desc: str) -> list[Completion]:
        from harness.generation.generate import chat_texts, generate

        tokenizer = self.loaded.tokenizer
        lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in chat_texts(tokenizer, conversations)]
        fits = [i for i, n in enumerate(lengths) if n <= self.config.max_length]
        gens = generate(
            self.loaded,
            [conversations[i] for i in fits],
            max_new_tokens=self.config.max_new_tokens,
            batch_size=self.config.batch_size,
            do_sample=self.config.temperature > 0,
            temperature=self.config.temperature or 1.0,
            desc=desc,
        )
        out: list[Completion] = [
            ValueError(f"judge prompt has {n} tokens, over judge.max_length={self.config.max_length}") for n in lengths
        ]
        for i, gen in zip(fits, gens):
            out[i] = gen.text
        return out

    def next_token_probs(
        self, conversations: list[list[dict[str, str]]], prefill: str, choices: list[str], desc: str
    ) -> list[dict[str, float] | Exception]:
        """P(choice) for the token after `prefill` in the assistant turn, renormalised over `choices`.

        A choice that spans several tokens (e.g. "10") gets the product of its tokens' probabilities.
        (torch is imported here, not with the module: the judge registry imports this module to
        learn the judge types, and validating a config must not load torch.)
        """
        import torch

        from harness.generation.generate import chat_texts

        with torch.inference_mode():
            return self._next_token_probs(conversations, prefill, choices, desc, torch, chat_texts)

    def _next_token_probs(
        self, conversations, prefill, choices, desc, torch, chat_texts
    ) -> list[dict[str, float] | Exception]:
        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        tokenizer.padding_side = "left"
        texts = [t + prefill for t in chat_texts(tokenizer, conversations)]
        lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        fits = [i for i, n in enumerate(lengths) if n < self.config.max_length]
        out: list[dict[str, float] | Exception] = [
            ValueError(f"judge prompt has {n} tokens, over judge.max_length={self.config.max_length}") for n in lengths
        ]
        choice_ids = [tokenizer(c, add_special_tokens=False).input_ids for c in choices]
        bs = self.config.batch_size
        for start in tqdm(range(0, len(fits), bs), desc=desc, unit="batch"):
            idx = fits[start : start + bs]
            batch = [texts[i] for i in idx]
            # One forward pass per distinct continuation prefix ("" for all, "1" for "10"), not per choice.
            prefixes = sorted({tuple(ids[:k]) for ids in choice_ids for k in range(len(ids))})
            logps = {}
            for prefix in prefixes:
                extended = [text + tokenizer.decode(list(prefix)) for text in batch]
                enc = tokenizer(extended, return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(model.device) for k, v in enc.items()}
                logps[prefix] = torch.log_softmax(model(**enc).logits[:, -1].float(), dim=-1).cpu()
            scores = torch.stack(
                [sum(logps[tuple(ids[:k])][:, tok] for k, tok in enumerate(ids)) for ids in choice_ids], dim=1
            )
            for i, row in zip(idx, torch.softmax(scores, dim=-1)):
                out[i] = {c: float(p) for c, p in zip(choices, row)}
        return out


class _Transient(Exception):
    """A failure worth retrying."""


class OpenAIBackend:
    """POST {base_url}/chat/completions, as OpenAI, vLLM, llama.cpp and `transformers serve` accept."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"  # type: ignore[union-attr]
        if config.api_key_env and not os.environ.get(config.api_key_env):
            raise BenchError(
                f"judge.api_key_env names {config.api_key_env!r}, but that environment variable is not set; "
                f"export {config.api_key_env}=... (keys are never read from config files)."
            )

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key_env:
            headers["Authorization"] = "Bearer " + os.environ[self.config.api_key_env]
        return headers

    def _once(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps(
            {
                "model": self.config.model,
                "messages": messages,
                "temperature": self.config.temperature,
                "max_tokens": self.config.max_new_tokens,
            }
        ).encode()
        request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:200].decode("utf-8", "replace")
            if err.code == 429 or err.code >= 500:
                raise _Transient(f"HTTP {err.code}: {detail}") from None
            raise RuntimeError(f"HTTP {err.code} from {self.url}: {detail}") from None
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError, OSError) as err:
            raise _Transient(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from None
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):  # ValueError: bad JSON or bad UTF-8
            raise _Transient(f"malformed response: {raw[:200]!r}") from None
        if not isinstance(content, str):
            raise _Transient(f"malformed response: content is {type(content).__name__}")
        return content

    def _with_retries(self, messages: list[dict[str, str]]) -> Completion:
        delay = 0.5
        for attempt in range(self.config.max_retries + 1):
            try:
                return self._once(messages)
            except _Transient as err:
                last: Exception = err
                if attempt < self.config.max_retries:
                    time.sleep(delay)
                    delay *= 2
            except RuntimeError as err:
                return err
        return RuntimeError(f"gave up after {self.config.max_retries + 1} attempts: {last}")

    def complete(self, conversations: list[list[dict[str, str]]], desc: str) -> list[Completion]:
        with ThreadPoolExecutor(self.config.concurrency) as pool:
            return list(
                tqdm(pool.map(self._with_retries, conversations), total=len(conversations), desc=desc, unit="call")
            )
