"""The 51 MillionAID third-level scene classes in the output order of the RSP scene models.

RSP (github.com/ViTAE-Transformer/RSP, "Scene Recognition/README.md") trains on the 51
third-level MillionAID categories with label files such as ``P0960374.jpg dry_field 0``; the
label files themselves were never published (RSP issue #24 asks for the mapping; unanswered).

Sources used and what they establish:
  * the 51 class names: torchgeo ``MillionAID.multi_class_categories`` (its ``bapsketball_court``
    typo corrected to ``basketball_court``) and the MillionAID paper (Long et al., JSTARS 2021,
    doi:10.1109/JSTARS.2021.3070368): a three-level tree, 8 first-level, 28 second-level and
    51 third-level nodes;
  * the 8 level-1 and 28 level-2 names: torchgeo ``multi_label_categories`` and the label_1 /
    label_2 class lists of the Hugging Face copy ``jonathan-roberts1/Million-AID``;
  * the index order: the MillionAID multi-class challenge (codalab competition 35945) lists
    "(0) dry_field, (1) greenhouse, (2) paddy_field, (3) terraced_field, (4) meadow, (5) forest,
    (6) orchard, (7) commercial_..." and RSP's README shows ``dry_field 0``: the classes are
    numbered depth-first through the tree with every level sorted alphabetically. Indices 0-7
    are confirmed by that listing; the rest follow from the rule and the tree below.

NOT confirmed (no published source found from here; the order after index 7 depends on them):
  * which level-2 node holds ``wastewater_plant`` (taken as industrial_land/factory_area),
    ``swimming_pool`` (public_service_land/leisure_land, with golf_course) and ``bridge``
    (transportation_land/highway_area). If a checkpoint's predictions look permuted for these
    classes, pass the right list with ``rsi_convert.py --classes``.
Level-2 nodes without children (e.g. commercial_area, apartment, lake) are their own
third-level class, as in the dataset's folder layout.
"""
from typing import Dict, List, Tuple

LEVELS = ["level1", "level2", "level3"]

# level1 -> level2 -> [level3]; every level alphabetical (that is what fixes the index order)
HIERARCHY: Dict[str, Dict[str, List[str]]] = {
    "agriculture_land": {
        "arable_land": ["dry_field", "greenhouse", "paddy_field", "terraced_field"],
        "grassland": ["meadow"],
        "woodland": ["forest", "orchard"],
    },
    "commercial_land": {"commercial_area": ["commercial_area"]},
    "industrial_land": {
        "factory_area": ["storage_tank", "wastewater_plant", "works"],
        "mining_area": ["mine", "oil_field", "quarry"],
        "power_station": ["solar_power_plant", "substation", "wind_turbine"],
    },
    "public_service_land": {
        "leisure_land": ["golf_course", "swimming_pool"],
        "religious_land": ["church"],
        "special_land": ["cemetery"],
        "sports_land": ["baseball_field", "basketball_court", "ground_track_field", "stadium",
                        "tennis_court"],
    },
    "residential_land": {
        "apartment": ["apartment"],
        "detached_house": ["detached_house"],
        "mobile_home_park": ["mobile_home_park"],
    },
    "transportation_land": {
        "airport_area": ["apron", "helipad", "runway"],
        "highway_area": ["bridge", "intersection", "parking_lot", "road", "roundabout", "viaduct"],
        "port_area": ["pier"],
        "railway_area": ["railway", "train_station"],
    },
    "unutilized_land": {
        "bare_land": ["bare_land"],
        "desert": ["desert"],
        "ice_land": ["ice_land"],
        "island": ["island"],
        "rock_land": ["rock_land"],
        "sparse_shrub_land": ["sparse_shrub_land"],
    },
    "water_area": {
        "beach": ["beach"],
        "dam": ["dam"],
        "lake": ["lake"],
        "river": ["river"],
    },
}


def classes_with_parents() -> List[Tuple[str, str, str]]:
    """[(level3, level1, level2)] in output-channel order."""
    out = []
    for l1 in sorted(HIERARCHY):
        for l2 in sorted(HIERARCHY[l1]):
            for l3 in sorted(HIERARCHY[l1][l2]):
                out.append((l3, l1, l2))
    return out


CLASSES: List[str] = [c for c, _, _ in classes_with_parents()]

# Colours for maps of scene labels: one hue family per level-1 node.
_L1_COLORS = {
    "agriculture_land": (60, 170, 60), "commercial_land": (230, 120, 40),
    "industrial_land": (150, 80, 150), "public_service_land": (220, 60, 90),
    "residential_land": (240, 200, 60), "transportation_land": (120, 120, 120),
    "unutilized_land": (190, 160, 120), "water_area": (40, 110, 220),
}


def class_entries() -> List[dict]:
    """rsi.json ``classes`` entries with ``parents`` [level1, level2] (hierarchy.levels = LEVELS)."""
    entries = []
    rank: Dict[str, int] = {}
    for i, (c, l1, l2) in enumerate(classes_with_parents()):
        k = rank.get(l1, 0)
        rank[l1] = k + 1
        base = _L1_COLORS[l1]
        # vary brightness within the family so neighbouring classes stay distinguishable
        f = 0.6 + 0.4 * ((k * 37) % 11) / 10.0
        color = [int(min(255, round(v * f + 20 * (k % 3)))) for v in base]
        entries.append({"id": i, "name": c, "color": color, "parents": [l1, l2]})
    return entries


assert len(CLASSES) == 51 and len(set(CLASSES)) == 51
assert CLASSES[:8] == ["dry_field", "greenhouse", "paddy_field", "terraced_field", "meadow",
                       "forest", "orchard", "commercial_area"]
