"""Regenerate ``profiles/fr/search-parameters.json`` from the French ANS implementation guides.

PDSm (document sharing, ITI-67/66 for Mon Espace Santé) and GAP (shared agendas) define search
parameters of their own (``period-start``, ``isArchived``, Appointment ``created``...). The server
never reads the packages at run time: this script keeps the SearchParameters whose base is a type
we serve, with the same fields as ``build_r4``, sorted by url. Definitions are copied as
published, never completed by hand. Run it only when a package changes::

    python -m profiles.build_fr path/to/ans.fhir.fr.pdsm-….tgz path/to/ans.fhir.fr.gap-….tgz
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

from profiles.build_r4 import SEARCH_PARAMETER_FIELDS, SERVED

HERE = Path(__file__).parent / "fr"


def _search_parameters(package: Path) -> list[dict]:
    """The served SearchParameters of one package, reduced to SEARCH_PARAMETER_FIELDS."""
    out = []
    with tarfile.open(package) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if not (name.startswith("SearchParameter-") and name.endswith(".json")):
                continue
            sp = json.load(tar.extractfile(member))
            if SERVED & set(sp.get("base", [])):
                out.append({k: sp[k] for k in SEARCH_PARAMETER_FIELDS if k in sp})
    return out


def build(packages: list[Path]) -> None:
    by_url = {sp["url"]: sp for package in packages for sp in _search_parameters(package)}
    HERE.mkdir(exist_ok=True)
    search_parameters = sorted(by_url.values(), key=lambda sp: sp["url"])
    (HERE / "search-parameters.json").write_text(json.dumps(search_parameters, indent=1))


if __name__ == "__main__":
    build([Path(p) for p in sys.argv[1:]])
