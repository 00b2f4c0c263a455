"""Derive envs/alfworld/data/catalog.json from the alfworld package (MIT license): ALFRED's object and
receptacle affordances and the object types of each AI2-THOR floor plan.

    .venv/bin/python scripts/derive_alfworld_catalog.py     # needs the alfworld extra

The generator reads only the JSON, so generating tasks needs no alfworld install. Re-run this when the
alfworld pin changes; the output is sorted and stable.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOM_TYPES = {range(1, 31): "kitchen", range(201, 231): "livingroom", range(301, 331): "bedroom",
              range(401, 431): "bathroom"}
# ALFRED's scene split: floor plans 1-6, 201-206, 301-306, 401-406 are unseen in training (valid_unseen).
HELD_OUT = set(range(1, 7)) | set(range(201, 207)) | set(range(301, 307)) | set(range(401, 407))


def main() -> None:
    from alfworld.gen import constants as c

    layouts = Path(c.__file__).parent / "layouts"
    static = sorted(set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES))
    movable = sorted(c.MOVABLE_RECEPTACLES)
    pickupable = sorted((set(c.OBJECTS) - set(static)) & set().union(*c.VAL_RECEPTACLE_OBJECTS.values()))
    rooms = {}
    for number_range, room in ROOM_TYPES.items():
        for n in number_range:
            path = layouts / f"FloorPlan{n}-objects.json"
            if not path.exists():
                continue
            present = set(json.loads(path.read_text()))
            rooms[f"FloorPlan{n}"] = {
                "room": room,
                "scenes": "unseen" if n in HELD_OUT else "seen",
                "receptacles": sorted(present & set(static)),
                "objects": sorted(present & (set(pickupable) | set(movable))),
                "lamps": sorted(present & set(c.VAL_ACTION_OBJECTS["Toggleable"])),
            }
    catalog = {
        "source": "derived from alfworld 0.4.2 (MIT license): alfworld/gen/constants.py and alfworld/gen/layouts",
        "static_receptacles": static,
        "movable_receptacles": movable,
        "openable": sorted(c.OPENABLE_CLASS_LIST),
        "pickupable": pickupable,
        "can_contain": {r: sorted(objs) for r, objs in sorted(c.VAL_RECEPTACLE_OBJECTS.items())},
        "affordances": {k.lower(): sorted(v) for k, v in sorted(c.VAL_ACTION_OBJECTS.items())},
        "rooms": rooms,
    }
    out = Path(__file__).resolve().parents[1] / "envs" / "alfworld" / "data" / "catalog.json"
    out.write_text(json.dumps(catalog, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out} ({len(rooms)} floor plans)")


if __name__ == "__main__":
    main()
