"""Signed participant links (the participant ID alone is no credential).

The study's secret (32 random bytes, made once and kept in the study database) signs links with HMAC-SHA256:

- `per_participant` (default): the link carries the participant ID and `sig` = HMAC(secret, "participant:" + ID),
  made by `softlabels elicit links` for a list of IDs. Only someone holding that link can get or answer the
  participant's batch.
- `study_link`: for platforms that fill in the ID themselves (Prolific's `{{%PROLIFIC_PID%}}`): one link for the
  whole study carries `sig` = HMAC(secret, "study-link"); any ID with that signature is accepted. The link keeps
  out people who never saw the study, and the per-address caps on open batches (`limits`) keep someone who has
  it from reserving the study away; per-participant links are accepted too.

A signature is 32 hex digits (128 bits of the HMAC), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

SIG_LENGTH = 32


class Access:
    def __init__(self, secret: str, mode: str = "per_participant", id_param: str = "PROLIFIC_PID",
                 sig_param: str = "sig"):  # fmt: skip
        if len(secret) < 32:
            raise ValueError("the study secret must be at least 32 characters")
        self._key = secret.encode()
        self.mode = mode
        self.id_param = id_param
        self.sig_param = sig_param

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()[:SIG_LENGTH]

    def sign(self, participant: str) -> str:
        """The per-participant signature of `participant`."""
        return self._mac(f"participant:{participant}")

    def study_signature(self) -> str:
        return self._mac("study-link")

    def verify(self, participant: str, sig) -> bool:
        if not isinstance(sig, str) or not isinstance(participant, str) or len(sig) != SIG_LENGTH:
            return False
        if hmac.compare_digest(sig.encode(), self.sign(participant).encode()):
            return True
        return self.mode == "study_link" and hmac.compare_digest(sig.encode(), self.study_signature().encode())

    def link(self, base_url: str, participant: str) -> str:
        """A participant's link under `base_url` (the page's address, e.g. https://example.org/study/)."""
        return f"{base_url}?{urlencode({self.id_param: participant, self.sig_param: self.sign(participant)})}"

    def study_link(self, base_url: str, placeholder: str) -> str:
        """The one study-level link; `placeholder` is the platform's ID macro, e.g. {{%PROLIFIC_PID%}}."""
        if self.mode != "study_link":
            raise ValueError("key 'access.mode': a study-level link needs 'access: {mode: study_link}' in the study file")
        return f"{base_url}?{self.id_param}={placeholder}&{self.sig_param}={self.study_signature()}"
