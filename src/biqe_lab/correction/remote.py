"""The best tier: an OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted) over httpx, parsed strictly."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import httpx

from ..errors import EngineError, InputError
from ..model import Producer
from ..version import __version__
from .presets import Preset
from .step import LineInput, Proposal

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class RemoteSettings:
    """Where the endpoint is and how patient to be with it."""

    base_url: str
    model: str
    api_key: Optional[str] = None
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    batch_lines: int = 30
    json_mode: bool = False  # send response_format={"type": "json_object"} (most servers accept it)
    max_tokens: Optional[int] = None  # cap on the answer's length (None: the server's default)

    @classmethod
    def from_mapping(cls, conf: Mapping[str, str]) -> Optional["RemoteSettings"]:
        """From BIQE_LLM_* settings; None when no endpoint is configured (base URL and model both needed)."""
        base, model = (conf.get("BIQE_LLM_BASE_URL") or "").strip(), (conf.get("BIQE_LLM_MODEL") or "").strip()
        if not base and not model:
            return None
        if not base or not model:
            raise InputError("the best correction tier needs both BIQE_LLM_BASE_URL and BIQE_LLM_MODEL")
        if not base.startswith(("http://", "https://")):
            raise InputError(f"BIQE_LLM_BASE_URL must be an http(s) URL, got {base!r}")
        try:
            return cls(base_url=base.rstrip("/"), model=model, api_key=conf.get("BIQE_LLM_API_KEY") or None,
                       timeout=float(conf.get("BIQE_LLM_TIMEOUT", 60)), retries=int(conf.get("BIQE_LLM_RETRIES", 3)),
                       backoff=float(conf.get("BIQE_LLM_BACKOFF", 1.0)),
                       batch_lines=int(conf.get("BIQE_LLM_BATCH_LINES", 30)),
                       json_mode=str(conf.get("BIQE_LLM_JSON_MODE", "")).lower() in ("1", "true", "yes"),
                       max_tokens=int(conf["BIQE_LLM_MAX_TOKENS"]) if conf.get("BIQE_LLM_MAX_TOKENS") else None)
        except ValueError as exc:
            raise InputError(f"bad BIQE_LLM_* setting: {exc}") from exc


class MalformedAnswer(ValueError):
    """The endpoint answered, but not with the JSON the prompt asked for."""


class ChatClient:
    """POST {base_url}/chat/completions with timeouts and retries (429/5xx/network, exponential backoff)."""

    def __init__(self, settings: RemoteSettings, transport: Optional[httpx.BaseTransport] = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.sleep = sleep
        headers = {"Content-Type": "application/json", "User-Agent": f"biqe_lab/{__version__}"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self.http = httpx.Client(base_url=settings.base_url, headers=headers, transport=transport,
                                 timeout=httpx.Timeout(settings.timeout, connect=min(10.0, settings.timeout)))

    def _wait(self, attempt: int, response: Optional[httpx.Response]) -> None:
        delay = self.settings.backoff * 2 ** attempt
        if response is not None and response.headers.get("Retry-After", "").strip().isdigit():
            delay = float(response.headers["Retry-After"])
        self.sleep(min(delay, 30.0))

    def complete(self, messages: list[dict]) -> str:
        """The assistant's message text for ``messages``; EngineError when the endpoint keeps failing."""
        body: dict = {"model": self.settings.model, "messages": messages, "temperature": 0}
        if self.settings.json_mode:
            body["response_format"] = {"type": "json_object"}
        if self.settings.max_tokens:
            body["max_tokens"] = self.settings.max_tokens
        last = ""
        for attempt in range(self.settings.retries + 1):
            response = None
            try:
                response = self.http.post("/chat/completions", json=body)
            except httpx.TimeoutException as exc:
                last = f"timed out after {self.settings.timeout:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"cannot reach {self.settings.base_url}: {exc}"
            else:
                if response.status_code == 200:
                    return self._content(response)
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRY_STATUS:
                    raise EngineError(f"LLM endpoint refused the request ({last})", status=response.status_code)
            if attempt < self.settings.retries:
                self._wait(attempt, response)
        raise EngineError(f"LLM endpoint failed after {self.settings.retries + 1} attempts: {last}")

    @staticmethod
    def _content(response: httpx.Response) -> str:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise MalformedAnswer(f"not a chat completion: {response.text[:200]!r}") from exc
        if not isinstance(content, str):
            raise MalformedAnswer("the completion has no text content")
        return content

    def close(self) -> None:
        self.http.close()


def parse_lines(content: str, ids: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Strictly parse ``{"lines": [{"id", "text"}, ...]}``: answers per known id, and problems found."""
    match = FENCE.match(content)
    text = match.group(1) if match else content.strip()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedAnswer(f"answer is not JSON: {content[:120]!r}") from exc
    items = data.get("lines") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise MalformedAnswer("answer has no list of lines")
    known, answers, problems = set(ids), {}, []
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("id"), str) and isinstance(item.get("text"), str)):
            problems.append(f"malformed entry {str(item)[:60]}")
            continue
        if item["id"] not in known:
            problems.append(f"unknown line id {item['id']!r}")
            continue
        answers.setdefault(item["id"], []).append(item["text"])
    return answers, problems


class RemoteBackend:
    """Best tier: batches of a page's lines sent to the configured chat endpoint with the preset's prompt."""

    origin = "llm"

    def __init__(self, settings: RemoteSettings, transport: Optional[httpx.BaseTransport] = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.remote = settings
        self.client = ChatClient(settings, transport=transport, sleep=sleep)
        self.producer = Producer(engine="openai-compatible", model=settings.model, version=__version__)

    def settings(self) -> dict:
        return {"base_url": self.remote.base_url, "model": self.remote.model, "timeout": self.remote.timeout,
                "retries": self.remote.retries}

    def messages(self, batch: list[tuple[str, LineInput]], preset: Preset) -> list[dict]:
        listing = "\n".join(json.dumps({"id": short, "text": line.text}, ensure_ascii=False) for short, line in batch)
        user = preset.user_prompt.format(languages=", ".join(preset.languages), description=preset.description,
                                         lines=listing)
        return [{"role": "system", "content": preset.system_prompt}, {"role": "user", "content": user}]

    def propose(self, lines: list[LineInput], preset: Preset) -> list[Proposal]:
        producer = self.producer.model_copy(update={"prompt_version": preset.prompt_version})
        self.producer = producer
        out = [Proposal(line.id, line.text) for line in lines if not line.text.strip()]
        todo = [line for line in lines if line.text.strip()]
        size = max(1, self.remote.batch_lines)
        for start in range(0, len(todo), size):
            batch = [(f"L{start + i + 1}", line) for i, line in enumerate(todo[start:start + size])]
            out.extend(self._batch(batch, preset))
        return out

    def _batch(self, batch: list[tuple[str, LineInput]], preset: Preset) -> list[Proposal]:
        ids = [short for short, _ in batch]
        note = ""
        for _ in range(2):  # a malformed answer is asked for once more
            try:
                answers, problems = parse_lines(self.client.complete(self.messages(batch, preset)), ids)
                break
            except MalformedAnswer as exc:
                note = f"malformed answer: {exc}"
        else:
            return [Proposal(line.id, None, note) for _, line in batch]
        out = []
        for short, line in batch:
            got = answers.get(short, [])
            if not got:
                out.append(Proposal(line.id, None, "no answer for this line id" +
                                    (f" ({'; '.join(problems[:2])})" if problems else "")))
            for text in got:  # several answers for one id: the step rejects the line
                out.append(Proposal(line.id, text))
        return out
