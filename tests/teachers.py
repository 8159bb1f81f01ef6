"""A distill test's teacher as the distillers read it: the loaded model, its conditioning and its Denoiser."""

from __future__ import annotations

import torch


def loaded_teacher(spec_file):
    """(loaded model, TeacherText, teacher Denoiser) of a teacher spec file, on the CPU in float32."""
    from benchkit.models.loading import load_model
    from benchkit.models.presets import resolve_spec
    from distillers.prompt_encoding import teacher_text
    from distillers.run import teacher_denoiser

    model = load_model(resolve_spec(str(spec_file)), torch.device("cpu"), torch.float32)
    text = teacher_text(model, torch.device("cpu"))
    return model, text, teacher_denoiser(model, text)
