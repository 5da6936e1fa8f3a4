"""Video rendering (issue 15): slides, narration, ffmpeg; the AI provider layer.

A worker calls :func:`render_video` with the scenes, a TTS provider and the course's
branding; nothing here needs the database, a broker or (with the local providers) a network.
"""

from tecnocursos.videos.ffmpeg import Probe, probe
from tecnocursos.videos.models import (
    Branding,
    ProviderError,
    RenderCancelled,
    RenderProgress,
    RenderResult,
    SceneInput,
    SceneRenderError,
    SceneTiming,
)
from tecnocursos.videos.render import render_video
from tecnocursos.videos.tts import (
    AvatarProvider,
    EspeakTTS,
    NoAvatar,
    SilentTTS,
    Speech,
    TTSProvider,
    local_tts,
)

__all__ = [
    "AvatarProvider",
    "Branding",
    "EspeakTTS",
    "NoAvatar",
    "Probe",
    "ProviderError",
    "RenderCancelled",
    "RenderProgress",
    "RenderResult",
    "SceneInput",
    "SceneRenderError",
    "SceneTiming",
    "SilentTTS",
    "Speech",
    "TTSProvider",
    "local_tts",
    "probe",
    "render_video",
]
