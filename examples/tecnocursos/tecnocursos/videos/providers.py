"""Providers chosen by the ``ai`` settings section."""

from __future__ import annotations

from tecnocursos.core.settings import AISettings
from tecnocursos.videos.http_providers import DIDAvatar, ElevenLabsTTS
from tecnocursos.videos.resilience import CircuitBreaker, RetryPolicy
from tecnocursos.videos.tts import AvatarProvider, NoAvatar, TTSProvider, local_tts

__all__ = ["avatar_from_settings", "tts_from_settings"]


def _resilience(ai: AISettings) -> tuple[RetryPolicy, CircuitBreaker]:
    return (
        RetryPolicy(attempts=ai.max_attempts, max_delay=ai.max_retry_delay),
        CircuitBreaker(threshold=ai.breaker_threshold, cooldown=ai.breaker_cooldown),
    )


# --8<-- [start:tts-from-settings]
def tts_from_settings(ai: AISettings) -> TTSProvider:
    """The narration provider of ``ai.tts_provider``.

    Raises:
        ValueError: ``elevenlabs`` without its key or a voice.
    """
    if ai.tts_provider == "elevenlabs":
        if ai.elevenlabs_api_key is None or not (ai.elevenlabs_voice or ai.elevenlabs_voices):
            raise ValueError("ai.tts_provider=elevenlabs needs ai.elevenlabs_api_key and a voice")
        policy, breaker = _resilience(ai)
        voices = ai.elevenlabs_voices
        return ElevenLabsTTS(
            ai.elevenlabs_api_key,
            voices=voices,
            default_voice=ai.elevenlabs_voice or next(iter(voices.values())),
            model_id=ai.elevenlabs_model,
            base_url=ai.elevenlabs_base_url,
            timeout=ai.request_timeout,
            policy=policy,
            breaker=breaker,
        )
    # "local": espeak-ng when installed, else silence + captions (the result warns).
    return local_tts(force_silent=ai.tts_provider == "silent")
    # --8<-- [end:tts-from-settings]


def avatar_from_settings(ai: AISettings) -> AvatarProvider:
    """The avatar provider of ``ai.avatar_provider`` (``none`` by default).

    Raises:
        ValueError: ``d-id`` without its key or presenter picture.
    """
    if ai.avatar_provider == "d-id":
        if ai.did_api_key is None or ai.did_source_url is None:
            raise ValueError("ai.avatar_provider=d-id needs ai.did_api_key and ai.did_source_url")
        policy, breaker = _resilience(ai)
        return DIDAvatar(
            ai.did_api_key,
            source_url=ai.did_source_url,
            base_url=ai.did_base_url,
            timeout=ai.request_timeout,
            policy=policy,
            breaker=breaker,
        )
    return NoAvatar()
