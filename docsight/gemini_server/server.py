"""The aiohttp app: generateContent, countTokens, OpenAI chat, control and stats.

Order of checks for a generate call (each may answer early):
API key -> body -> forced fault from the queue -> down / random errors ->
image decoding (400) -> quotas (429, consumes nothing) -> latency -> answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from . import google_errors, response_shapes
from .config import GeminiServerConfig
from .faults import ControlError, FaultPlan, FaultSettings, ForcedResponse
from .generation import Generation, PromptUsage, count_prompt_tokens, generate
from .google_errors import ApiError
from .quota import QUOTA_TIERS, REQUESTS_PER_DAY, ProjectQuotas, QuotaViolation
from .request_parsing import GenerateCall, parse_count_tokens, parse_generate_content, parse_openai_chat
from .stats import ServerStats

log = logging.getLogger("docsight.gemini_server")

_QUOTA_CONTROL_KEYS = ("rpm", "tpm", "rpd", "window_seconds", "day_seconds")
_CONTROL_KEYS = set(FaultPlan.CONTROL_KEYS) | set(_QUOTA_CONTROL_KEYS) | {"api_keys", "quota_tier", "reset_quotas"}
_DEFAULT_QUOTA_VALUE = {"rpm": 10, "tpm": 250000, "rpd": 250}  # free-tier figures, for forced 429s only


class _DropConnection(Exception):
    """Close the socket without answering."""


@dataclass
class _Outcome:
    call: GenerateCall
    prompt: PromptUsage
    generation: Generation | None = None
    blocked: tuple[str, str] | None = None  # ("prompt" | "answer", reason)


class GeminiServer:
    """Holds the state; ``start()`` binds, ``stop()`` unbinds. Use within one event loop."""

    def __init__(self, config: GeminiServerConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config = dataclasses.replace(config) if config else GeminiServerConfig()
        self.clock = clock
        self.api_keys = frozenset(config.api_keys) if config.api_keys is not None else None
        self.quota_tier = config.quota_tier
        self.quotas = ProjectQuotas(config.rpm, config.tpm, config.rpd, config.window_seconds, config.day_seconds, clock)
        self.faults = FaultPlan(
            FaultSettings(config.latency_ms, config.jitter_ms, config.error_rate_500, config.error_rate_503, config.down),
            seed=config.seed,
        )
        self.stats_recorder = ServerStats(config.window_seconds, clock)
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle -------------------------------------------------------

    def _build_app(self) -> web.Application:
        # Above the 20 MB API limit, so oversized requests get the real 400, not aiohttp's 413.
        app = web.Application(client_max_size=google_errors.MAX_REQUEST_BYTES + 4 * 1024 * 1024)
        app.router.add_post("/{version}/models/{target}", self._handle_models)
        app.router.add_post("/{version}/openai/chat/completions", self._handle_openai_chat)
        app.router.add_get("/_control", self._handle_get_control)
        app.router.add_post("/_control", self._handle_post_control)
        app.router.add_get("/_stats", self._handle_get_stats)
        app.router.add_post("/_stats/reset", self._handle_reset_stats)
        return app

    async def start(self) -> str:
        # access_log=None: the access log would print ?key=... query strings.
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{host}:{port}"
        log.info("Gemini-compatible server listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- control and stats (also callable in-process) --------------------

    def control(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Apply a control payload (all or nothing) and return the current settings."""
        payload = payload or {}
        if not isinstance(payload, dict):
            raise ControlError("control payload must be a JSON object")
        unknown = set(payload) - _CONTROL_KEYS
        if unknown:
            raise ControlError(f"unknown control keys: {sorted(unknown)}")
        for key in ("rpm", "tpm", "rpd"):
            if key in payload and payload[key] is not None and (not isinstance(payload[key], int) or payload[key] < 0):
                raise ControlError(f"{key} must be a non-negative integer or null")
        for key in ("window_seconds", "day_seconds"):
            if key in payload and (not isinstance(payload[key], (int, float)) or payload[key] <= 0):
                raise ControlError(f"{key} must be a positive number")
        if "quota_tier" in payload and payload["quota_tier"] not in QUOTA_TIERS:
            raise ControlError(f"quota_tier must be one of {QUOTA_TIERS}")
        keys = payload.get("api_keys")
        if "api_keys" in payload and keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys)):
            raise ControlError("api_keys must be a list of non-empty strings or null")
        self.faults.validate(payload)

        self.faults.apply(payload)
        quota_changes = {k: payload[k] for k in _QUOTA_CONTROL_KEYS if k in payload}
        if quota_changes:
            self.quotas.reconfigure(**quota_changes)
        if "window_seconds" in payload:
            self.stats_recorder.set_window(float(payload["window_seconds"]))
        if payload.get("reset_quotas"):
            self.quotas.clear()
        if "api_keys" in payload:
            self.api_keys = None if payload["api_keys"] is None else frozenset(payload["api_keys"])
        if "quota_tier" in payload:
            self.quota_tier = payload["quota_tier"]
        return self.control_snapshot()

    def control_snapshot(self) -> dict[str, Any]:
        return {
            **self.faults.snapshot(),
            "rpm": self.quotas.rpm,
            "tpm": self.quotas.tpm,
            "rpd": self.quotas.rpd,
            "window_seconds": self.quotas.window_seconds,
            "day_seconds": self.quotas.day_seconds,
            "quota_tier": self.quota_tier,
            "api_keys_restricted": self.api_keys is not None,  # never echo keys
            "quota_usage": self.quotas.usage(),
        }

    def stats(self) -> dict[str, Any]:
        return self.stats_recorder.snapshot()

    def reset_stats(self) -> None:
        self.stats_recorder.reset()

    async def _handle_get_control(self, request: web.Request) -> web.Response:
        return web.json_response(self.control_snapshot())

    async def _handle_post_control(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(self.control(await request.json()))
        except (ControlError, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _handle_get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle_reset_stats(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.json_response(self.stats())

    # --- the API ---------------------------------------------------------

    async def _handle_models(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        if method == "generateContent" and model:
            return await self._answer(request, "generateContent", self._gemini_key(request),
                                      lambda body: parse_generate_content(model, body), self._gemini_success,
                                      _gemini_error)
        if method == "countTokens" and model:
            return await self._count_tokens(request, model)
        return web.json_response(
            google_errors.ApiError(404, "NOT_FOUND", f"Method not found: {request.path}").body(), status=404
        )

    async def _handle_openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "openai.chat.completions", _bearer_key(request), parse_openai_chat,
                                  self._openai_success, _openai_error)

    @staticmethod
    def _gemini_key(request: web.Request) -> str:
        return request.headers.get("x-goog-api-key") or request.query.get("key", "")

    def _check_key(self, key: str) -> None:
        if not key:
            raise google_errors.missing_api_key()
        if self.api_keys is not None and key not in self.api_keys:
            raise google_errors.api_key_invalid()

    def _check_model(self, model: str, method: str) -> None:
        if self.config.models is not None and model not in self.config.models:
            raise google_errors.model_not_found(model, method)

    async def _read_json(self, request: web.Request) -> Any:
        raw = await request.read()
        if len(raw) > google_errors.MAX_REQUEST_BYTES:
            raise google_errors.invalid_argument(
                f"Request payload size exceeds the limit: {google_errors.MAX_REQUEST_BYTES} bytes."
            )
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise google_errors.invalid_argument("Invalid JSON payload received. Unexpected token.") from None

    async def _answer(
        self,
        request: web.Request,
        endpoint: str,
        api_key: str,
        parse: Callable[[Any], GenerateCall],
        render_success: Callable[[_Outcome], dict[str, Any]],
        render_error: Callable[[ApiError], Any],
    ) -> web.StreamResponse:
        started = time.perf_counter()
        self.stats_recorder.received(endpoint)
        model = "-"
        try:
            self._check_key(api_key)
            call = parse(await self._read_json(request))
            model = call.model
            self._check_model(model, "generateContent")
            outcome = await self._run(call)
        except ApiError as error:
            self.stats_recorder.answered_error(error.code)
            _log_request(request, error.code, started, model)
            return web.json_response(render_error(error), status=error.code)
        except _DropConnection:
            self.stats_recorder.closed_connection()
            _log_request(request, "closed", started, model)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp then ends the connection without writing
        generation = outcome.generation
        self.stats_recorder.answered_ok(
            outcome.prompt.total,
            generation.output_tokens if generation and not outcome.blocked else 0,
            generation.thoughts_tokens if generation else 0,
            blocked=outcome.blocked is not None,
        )
        _log_request(request, 200, started, model, outcome.prompt.total)
        return web.json_response(render_success(outcome))

    async def _run(self, call: GenerateCall) -> _Outcome:
        # Blocks are 200 answers: they stay queued until a call passes the quotas.
        forced = self.faults.peek_forced()
        if forced is not None and not forced.is_block:
            self.faults.next_forced()
            if forced.kind == "close":
                raise _DropConnection
            if forced.kind == "hang":
                await asyncio.sleep(forced.seconds)
            else:
                await self._latency()
                raise self._forced_error(forced, call.model)
        if self.faults.settings.down:
            await self._latency()
            raise google_errors.overloaded()
        random_code = self.faults.random_error_code()
        if random_code is not None:
            await self._latency()
            raise google_errors.internal() if random_code == 500 else google_errors.overloaded()

        prompt = count_prompt_tokens(call)
        violations = self.quotas.try_acquire(call.model, prompt.total)
        if violations:
            retry_delay = None
            if all(v.kind == REQUESTS_PER_DAY for v in violations):
                # as the real API does: a spent day still gets a RetryInfo of seconds, not the time to its reset
                retry_delay = min(max(v.wait_seconds for v in violations), self.quotas.window_seconds)
            raise google_errors.resource_exhausted(violations, call.model, self.quota_tier, retry_delay=retry_delay)
        self.stats_recorder.admitted()
        blocked = None
        head = self.faults.peek_forced()
        if head is not None and head.is_block:
            self.faults.next_forced()
            blocked = (head.kind.removeprefix("block_"), head.reason)
        await self._latency()
        if blocked and blocked[0] == "prompt":
            return _Outcome(call, prompt, None, blocked)
        return _Outcome(call, prompt, generate(call, prompt), blocked)

    def _forced_error(self, forced: ForcedResponse, model: str) -> ApiError:
        if forced.kind == "429":
            limit = self.quotas.limit(forced.quota) or _DEFAULT_QUOTA_VALUE[forced.quota]
            delay = forced.retry_delay_s
            violation = QuotaViolation(forced.quota, limit, delay if delay is not None else 0.0)
            return google_errors.resource_exhausted([violation], model, self.quota_tier,
                                                    retry_delay=delay if delay is not None else -1)
        if forced.kind == "500":
            return google_errors.internal()
        if forced.kind == "503":
            return google_errors.overloaded()
        default = {500: google_errors.INTERNAL_MESSAGE, 503: google_errors.OVERLOADED_MESSAGE}
        return ApiError(int(forced.code), forced.status, forced.message or default.get(int(forced.code), forced.status))

    async def _latency(self) -> None:
        delay = self.faults.latency_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _count_tokens(self, request: web.Request, model: str) -> web.Response:
        # countTokens is free: not under the generate quotas, faults or stats.
        try:
            self._check_key(self._gemini_key(request))
            call = parse_count_tokens(model, await self._read_json(request))
            self._check_model(model, "countTokens")
            prompt = count_prompt_tokens(call)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        return web.json_response(response_shapes.count_tokens_body(prompt))

    # --- success bodies --------------------------------------------------

    @staticmethod
    def _gemini_success(outcome: _Outcome) -> dict[str, Any]:
        model = outcome.call.model
        if outcome.blocked and outcome.blocked[0] == "prompt":
            return response_shapes.prompt_blocked_body(model, outcome.prompt, outcome.blocked[1])
        assert outcome.generation is not None
        if outcome.blocked:
            return response_shapes.answer_blocked_body(model, outcome.generation, outcome.blocked[1])
        return response_shapes.generate_content_body(model, outcome.generation)

    @staticmethod
    def _openai_success(outcome: _Outcome) -> dict[str, Any]:
        generation = outcome.generation
        if outcome.blocked or generation is None:
            thoughts = generation.thoughts_tokens if generation else 0
            return response_shapes.openai_chat_body(outcome.call.model, None, "SAFETY", outcome.prompt.total, 0, thoughts)
        return response_shapes.openai_chat_body(
            outcome.call.model, generation.text, generation.finish_reason, outcome.prompt.total,
            generation.output_tokens, generation.thoughts_tokens,
        )


def _gemini_error(error: ApiError) -> dict[str, Any]:
    return error.body()


def _openai_error(error: ApiError) -> list[dict[str, Any]]:
    # Gemini's OpenAI-compatible endpoint wraps the Google error in a list.
    return [error.body()]


def _bearer_key(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _log_request(request: web.Request, status: Any, started: float, model: str, tokens: int | None = None) -> None:
    # request.path, never path_qs: the query may hold ?key=.
    if log.isEnabledFor(logging.DEBUG):
        extra = f" in_tokens={tokens}" if tokens is not None else ""
        log.debug("%s %s model=%s -> %s in %.1f ms%s", request.method, request.path, model, status,
                  (time.perf_counter() - started) * 1000, extra)


# --- ways to run it ------------------------------------------------------


@contextlib.asynccontextmanager
async def running_gemini_server(config: GeminiServerConfig | None = None) -> AsyncIterator[GeminiServer]:
    """Serve in the current event loop: ``async with running_gemini_server(cfg) as s: s.base_url``."""
    server = GeminiServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class GeminiServerThread:
    """Serve from a background thread with its own event loop.

    ``control``/``stats`` run on the server's loop, so they are safe to call
    from any thread; ``stats()`` still answers after ``stop()``.
    """

    def __init__(self, config: GeminiServerConfig | None = None) -> None:
        self.config = config or GeminiServerConfig()
        self.server: GeminiServer | None = None
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> str:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="gemini-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("Gemini server did not start")
        if self._error is not None:
            raise RuntimeError("Gemini server failed to start") from self._error
        return self.base_url

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            try:
                self.server = GeminiServer(self.config)
                self.base_url = await self.server.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stopping.wait()
            finally:
                await self.server.stop()

        asyncio.run(serve())

    def _call(self, fn: Callable[[], Any]) -> Any:
        if self.server is None:
            raise RuntimeError("not started")
        if self._thread is None or not self._thread.is_alive():
            return fn()  # stopped: no loop to hop onto, and no race either (stats after stop)

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def control(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call(lambda: self.server.control(payload))

    def stats(self) -> dict[str, Any]:
        return self._call(lambda: self.server.stats())

    def reset_stats(self) -> None:
        self._call(lambda: self.server.reset_stats())

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> "GeminiServerThread":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none", "unlimited") else int(text)


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docsight gemini-server",
        description="Local Gemini-compatible API server (generateContent, countTokens, OpenAI chat).",
    )
    defaults = GeminiServerConfig()
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accepted key (repeatable); default: any non-empty key")
    parser.add_argument("--model", action="append", dest="models", metavar="NAME",
                        help="served model (repeatable); default: any")
    parser.add_argument("--rpm", type=_optional_int, default=None, help="requests per window per model")
    parser.add_argument("--tpm", type=_optional_int, default=None, help="input tokens per window per model")
    parser.add_argument("--rpd", type=_optional_int, default=None, help="requests per day per model")
    parser.add_argument("--window-seconds", type=float, default=defaults.window_seconds)
    parser.add_argument("--day-seconds", type=float, default=defaults.day_seconds)
    parser.add_argument("--quota-tier", choices=QUOTA_TIERS, default=defaults.quota_tier)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--error-rate-500", type=float, default=0.0)
    parser.add_argument("--error-rate-503", type=float, default=0.0)
    parser.add_argument("--down", action="store_true", help="answer every generate call with 503")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-level", default="INFO")
    return parser


def config_from_args(args: argparse.Namespace) -> GeminiServerConfig:
    return GeminiServerConfig(
        host=args.host,
        port=args.port,
        api_keys=frozenset(args.api_keys) if args.api_keys else None,
        models=frozenset(args.models) if args.models else None,
        rpm=args.rpm,
        tpm=args.tpm,
        rpd=args.rpd,
        window_seconds=args.window_seconds,
        day_seconds=args.day_seconds,
        quota_tier=args.quota_tier,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate_500=args.error_rate_500,
        error_rate_503=args.error_rate_503,
        down=args.down,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    """Blocking entry point; stops on Ctrl-C / SIGTERM."""
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)

    async def serve() -> None:
        async with running_gemini_server(config) as server:
            print(f"Gemini-compatible server at {server.base_url} "
                  f"(use GOOGLE_GEMINI_BASE_URL={server.base_url})", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
