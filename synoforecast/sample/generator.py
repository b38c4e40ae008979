"""Write a realistic, deterministic sample sale-out workbook that follows the workbook contract.

The sample is what demos, tests and benchmarks ingest, so it has the shape of a real
export: 60 SVR-RM accounts with a heavy-tailed size distribution (a handful dominate
revenue), accounts that start buying late or stop, an upward trend, a Q4 peak, weekday
and quarter-end effects, returns (negative units and revenue), a brand-new model that
the `Device Bays` reference does not know yet, a consumer cohort, growing C2 cloud
subscriptions among the same accounts, and the reference sheets. The last quarter is
the export date's quarter and is partial, as in a real snapshot. All names, prices and
people are made up.

Determinism: the same `SampleSpec` gives a byte-identical file. All randomness comes
from `numpy.random.default_rng` seeded by the spec (one child stream per part, so the
customer pool does not change with `rows`), no set or hash order is ever used, the
document properties carry a timestamp derived from `as_of` and every zip entry carries
that same fixed timestamp.

Speed: plain `ws.append` in openpyxl's write-only mode costs ~240 µs per 10-column row
(~4 minutes for a million rows) because it builds and serialises one element per cell.
The workbook is still produced by openpyxl in write-only mode (package parts, styles,
header rows, frozen panes, column widths, the small reference sheets), but the data rows
of the three large sheets are rendered as `<row>` XML text from precomputed numpy
columns and reused per-customer/per-model cell runs, and spliced into the sheet parts
openpyxl writes while they stream into the zip archive; a second thread compresses
while the first renders. A million SVR-RM rows (plus 500k Consumer rows) take ~12-18 s
on a 2-core machine. The cells are ordinary SpreadsheetML cells (inline strings, numbers,
date serials with the workbook's registered `yyyy-mm-dd` style); data cells omit the
optional `r` reference, which Excel, openpyxl and calamine/fastexcel all accept.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import os
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from xml.sax.saxutils import escape

import numpy as np
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.writer.excel import ExcelWriter

from synoforecast.lib import quarters
from synoforecast.lib.files import atomic_path
from synoforecast.lib.ingest.contract import SHEETS
from synoforecast_dbt import PROJECT_DIR as DBT_PROJECT_DIR

SEEDS_DIR = DBT_PROJECT_DIR / "seeds"

# the headers the workbook contract reads, in its order (lib/ingest/contract.py)
_HEADERS = {sheet.name: tuple(column.header for column in sheet.columns) for sheet in SHEETS}
SALES_HEADER = _HEADERS["SVR-RM"]
C2_HEADER = _HEADERS["C2"]
TOP_CUSTOMERS_HEADER = _HEADERS["Top Customers"]
REGION_MAP_HEADER = _HEADERS["Region Map"]
DEVICE_BAYS_HEADER = _HEADERS["Device Bays"]

SHEET_SVR_RM = "SVR-RM"
SHEET_CONSUMER = "Consumer"
SHEET_C2 = "C2"
SHEET_TOP_CUSTOMERS = "Top Customers"
SHEET_REGION_MAP = "Region Map"
SHEET_DEVICE_BAYS = "Device Bays"

N_SVR_CUSTOMERS = 60
N_CONSUMER_CUSTOMERS = 40
N_TOP_CUSTOMERS = 15
RETURN_SHARE = 0.025
UNKNOWN_MODEL_SHARE = 0.002
# New models "not yet in Device Bays": (model, list price USD). Any that a later seed
# knows are skipped, so they stay unknown.
UNKNOWN_MODELS = (("RS2825RP+", 4_599.0), ("RS1225RP+", 2_199.0))

SVR_CHANNELS = ("Distributor", "Reseller", "Direct", "Online")
SVR_CHANNEL_P = (0.42, 0.33, 0.15, 0.10)
CONSUMER_CHANNELS = ("Online", "Reseller", "Distributor", "Direct")
CONSUMER_CHANNEL_P = (0.52, 0.34, 0.11, 0.03)
CHANNEL_DISCOUNT = {"Distributor": 0.24, "Reseller": 0.14, "Direct": 0.08, "Online": 0.05}

SEGMENTS = ("Enterprise", "MSP", "Public Sector", "Education")
SEGMENT_P = (0.42, 0.22, 0.20, 0.16)

C2_SERVICES = ("C2 Storage", "C2 Backup", "C2 Identity", "C2 Password", "C2 Transfer")
C2_FIRST_SERVICE_P = (0.35, 0.45, 0.10, 0.10, 0.0)
C2_PLANS = ("Standard", "Advanced")
# Illustrative monthly list price per seat, by service and plan.
C2_SEAT_PRICE = {
    "C2 Storage": (6.99, 13.99),
    "C2 Backup": (9.99, 17.99),
    "C2 Identity": (1.99, 3.49),
    "C2 Password": (2.99, 4.99),
    "C2 Transfer": (4.99, 8.99),
}

# Illustrative list prices (USD); models the seed gains later are priced by formula.
LIST_PRICE = {
    "RS422+": 1_099.0,
    "RS822+": 1_399.0,
    "RS822RP+": 1_649.0,
    "RS1221+": 1_899.0,
    "RS1221RP+": 2_149.0,
    "RS2421+": 2_699.0,
    "RS2421RP+": 2_999.0,
    "RS2423+": 2_899.0,
    "RS2423RP+": 3_199.0,
    "RS2821RP+": 4_299.0,
    "RS3621xs+": 5_999.0,
    "RS3621RPxs": 5_499.0,
    "RS4021xs+": 7_999.0,
    "SA3410": 6_499.0,
    "SA3610": 8_499.0,
    "SA6400": 11_999.0,
    "HD6500": 24_999.0,
    "DS224+": 329.0,
    "DS423+": 549.0,
    "DS723+": 479.0,
    "DS923+": 599.0,
    "DS1522+": 699.0,
    "DS1821+": 999.0,
    "DS124": 159.0,
    "DS223j": 209.0,
}

# Relative weight of each country among customer home countries (others weigh 1).
COUNTRY_WEIGHT = {
    "US": 14,
    "DE": 10,
    "JP": 8,
    "GB": 7,
    "TW": 5,
    "CN": 5,
    "FR": 5,
    "AU": 4,
    "CA": 3,
    "NL": 3,
    "KR": 3,
    "IT": 3,
    "IN": 3,
    "ES": 2,
    "SE": 2,
    "PL": 2,
    "SG": 2,
    "BR": 2,
    "HK": 2,
}
LEGAL_SUFFIX = {
    "DE": "GmbH",
    "FR": "SAS",
    "GB": "Ltd",
    "NL": "B.V.",
    "IT": "S.r.l.",
    "ES": "S.L.",
    "PL": "Sp. z o.o.",
    "SE": "AB",
    "AE": "LLC",
    "ZA": "(Pty) Ltd",
    "US": "Inc.",
    "CA": "Inc.",
    "BR": "Ltda.",
    "MX": "S.A. de C.V.",
    "AU": "Pty Ltd",
    "IN": "Pvt Ltd",
    "SG": "Pte Ltd",
    "KR": "Co., Ltd.",
    "TH": "Co., Ltd.",
    "CN": "Co., Ltd.",
    "TW": "Co., Ltd.",
    "HK": "Limited",
    "JP": "K.K.",
}
NAME_STEMS = (
    "Aldergrove",
    "Amber Coast",
    "Bluebird",
    "Blue Harbor",
    "Brightwater",
    "Cedar Ridge",
    "Copperleaf",
    "Coral Bay",
    "Crescent",
    "Driftwood",
    "Eastwind",
    "Evergreen",
    "Falconer",
    "Granite Peak",
    "Halcyon",
    "Harborview",
    "Highland",
    "Ironbridge",
    "Jade River",
    "Juniper",
    "Kestrel",
    "Lakeshore",
    "Lotus",
    "Lumen",
    "Maple Grove",
    "Meridian",
    "Mistral",
    "Nordlicht",
    "Northgate",
    "Oakfield",
    "Obsidian",
    "Orion",
    "Pinecrest",
    "Polaris",
    "Quarry Hill",
    "Redwood",
    "Riverside",
    "Sakura",
    "Silverline",
    "Skyward",
    "Stonebridge",
    "Summit",
    "Sunrise",
    "Thornbury",
    "Tidewater",
    "Trident",
    "Umber",
    "Vantage",
    "Vertex",
    "Westbrook",
    "Willow Creek",
    "Windmere",
    "Zenith",
)
NAME_PATTERNS = {
    "Enterprise": (
        "{s} Logistics {l}",
        "{s} Media & Events {l}",
        "{s} Health {l}",
        "{s} Engineering {l}",
        "{s} Foods {l}",
        "{s} Capital {l}",
        "{s} Pharma {l}",
        "{s} Retail Group {l}",
        "{s} Energy {l}",
        "{s} Studios {l}",
        "{s} Manufacturing {l}",
        "{s} Architects {l}",
    ),
    "MSP": (
        "{s} IT Services {l}",
        "{s} Managed IT {l}",
        "{s} Cloud Solutions {l}",
        "{s} Systems {l}",
        "{s} Datacenter {l}",
    ),
    "Public Sector": (
        "{s} Regional Council",
        "{s} Municipal Services",
        "{s} Water Authority",
        "{s} Transit Authority",
        "{s} Health District",
    ),
    "Education": ("{s} University", "{s} College", "{s} Institute of Technology", "{s} School District"),
    "Retail": (
        "{s} Electronics {l}",
        "{s} Computer Store {l}",
        "{s} Online Shop {l}",
        "{s} Digital {l}",
        "{s} Tech & Home {l}",
    ),
}
ACCOUNT_OWNERS = {
    "EMEA": ("Anna Keller", "Lukas Brandt", "Sophie Martin", "James Whitfield"),
    "Americas": ("Megan Torres", "Daniel Brooks", "Olivia Grant"),
    "APAC": ("Priya Raman", "Liam O'Connor"),
    "Greater China": ("Chen Wei-Ting", "Lin Jia-Hao"),
    "Japan": ("Sato Haruka", "Tanaka Ren"),
}
DEFAULT_OWNERS = ("Global Accounts Desk",)

EXCEL_EPOCH = np.datetime64("1899-12-30", "D")
DATE_STYLE_PROBE = datetime.date(2000, 1, 1)
ROWS_PER_CHUNK = 50_000
MAX_SHEET_ROWS = 1_048_575  # Excel's row limit, minus the header


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. Same spec -> byte-identical workbook."""

    rows: int = 20_000  # SVR-RM lines; Consumer gets rows // 2 lines
    seed: int = 42
    start: datetime.date | None = None  # first quarter; default: `quarters` back, ending with as_of's quarter
    quarters: int = 24  # calendar quarters covered
    as_of: datetime.date | None = None  # export date; default today; nothing is dated after it
    # the export as it would have looked on this earlier day: the same history as without it,
    # cut at the day (sales after it dropped, C2 months begun after it dropped), dated that day
    cutoff: datetime.date | None = None


@dataclass
class SheetStats:
    rows: int  # data rows written (excluding header)
    units_total: int
    revenue_total: float  # sum of the 2-dp revenue/MRR values, rounded to 2 dp
    unknown_models: int  # rows whose model is not in the Device Bays sheet
    quarters: list[str]  # sorted quarter labels present


@dataclass
class SampleStats:
    path: str
    sheets: dict[str, SheetStats]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def quarter_label(d: datetime.date) -> str:
    """Calendar quarter label of any day: 2025-08-14 -> "2025-Q3" (lib/quarters)."""
    return quarters.quarter_label(quarters.quarter_start(d))


def write_sample_workbook(
    path: str | os.PathLike, spec: SampleSpec = SampleSpec(), *, seeds_dir: str | os.PathLike | None = None
) -> SampleStats:
    """Write the sample workbook to `path` (atomically) and return what it contains.

    `seeds_dir` holds `device_bays.csv` and `region_map.csv` (default: the dbt project's
    seeds), which give the models, tiers, bays, countries and regions used.
    """
    start, end, as_of = _period(spec)
    if spec.cutoff is not None:
        cutoff = _as_date(spec.cutoff)
        if not start <= cutoff <= as_of:
            raise ValueError(f"cutoff {cutoff} must lie between the sample's start {start} and its export date {as_of}")
        as_of = cutoff
    models, countries = _load_seeds(Path(seeds_dir) if seeds_dir is not None else SEEDS_DIR)
    data = _generate(spec, start, end, models, countries)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.combine(max(as_of, datetime.date(1980, 1, 1)), datetime.time(18, 0))
    with atomic_path(path) as partial:  # not *.xlsx: an inbox watcher ignores it
        _write_workbook(partial, data, stamp)
        if spec.cutoff is not None:  # the export day is the file's date (the reader dates an export by it)
            os.utime(partial, (stamp.timestamp(), stamp.timestamp()))
    return SampleStats(path=str(path), sheets=data.stats)


# --------------------------------------------------------------------------- calendar


def _as_date(value: datetime.date) -> datetime.date:
    return value.date() if isinstance(value, datetime.datetime) else value


def _period(spec: SampleSpec) -> tuple[datetime.date, datetime.date, datetime.date]:
    """(first day, last day, as_of): whole calendar quarters, cut at as_of."""
    if not 0 <= spec.rows <= MAX_SHEET_ROWS:
        raise ValueError(f"rows must be 0..{MAX_SHEET_ROWS:,} (an Excel sheet has 1,048,576 rows), got {spec.rows}")
    if spec.quarters < 1:
        raise ValueError(f"quarters must be >= 1, got {spec.quarters}")
    as_of = _as_date(spec.as_of) if spec.as_of is not None else datetime.date.today()
    if spec.start is None:
        start = quarters.add_quarters(quarters.quarter_start(as_of), -(spec.quarters - 1))
    else:
        start = quarters.quarter_start(_as_date(spec.start))
    if start > as_of:
        raise ValueError(f"start {start} is after as_of {as_of}")
    end = min(as_of, quarters.add_quarters(start, spec.quarters) - datetime.timedelta(days=1))
    return start, end, as_of


# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True)
class _Model:
    name: str
    bays: int
    tier: str | None
    form_factor: str
    price: float


@dataclass(frozen=True)
class _Country:
    code: str
    region: str


def _load_seeds(seeds_dir: Path) -> tuple[list[_Model], list[_Country]]:
    bays_csv, region_csv = seeds_dir / "device_bays.csv", seeds_dir / "region_map.csv"
    for f in (bays_csv, region_csv):
        if not f.is_file():
            raise FileNotFoundError(f"sample workbook needs the seed {f} (pass seeds_dir=...)")
    models = []
    with open(bays_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            name, tier = row["model"].strip(), (row["tier"] or "").strip() or None
            bays = int(row["bays"])
            price = LIST_PRICE.get(name) or (
                {"T1": 4_000.0, "T2": 1_500.0, "T3": 600.0}.get(tier or "", 120.0) + 150.0 * bays
            )
            models.append(_Model(name, bays, tier, (row["form_factor"] or "").strip(), price))
    with open(region_csv, newline="", encoding="utf-8") as fh:
        countries = [_Country(r["country_code"].strip(), r["region"].strip()) for r in csv.DictReader(fh)]
    if not any(m.tier for m in models) or not any(m.tier is None for m in models):
        raise ValueError(f"{bays_csv} needs both tiered (SVR-RM) and untiered (consumer) models")
    if not countries:
        raise ValueError(f"{region_csv} has no countries")
    return models, countries


# --------------------------------------------------------------------------- generation


@dataclass
class _Customers:
    ids: list[str]
    names: list[str]
    country: np.ndarray  # index into countries
    segment: list[str]
    owner: list[str]
    size: np.ndarray  # relative weight (heavy tailed)
    score: np.ndarray  # 0..1, 1 = largest
    channel: np.ndarray  # primary channel index
    first_q: np.ndarray  # first active quarter index
    last_q: np.ndarray  # last active quarter index
    growth: np.ndarray  # per-year log growth of the account's weight


@dataclass
class _Sales:
    day: np.ndarray  # datetime64[D], sorted
    customer: np.ndarray
    model: np.ndarray  # index into the sheet's model table
    units: np.ndarray
    cents: np.ndarray
    channel: np.ndarray  # index into channel_names
    channel_names: tuple[str, ...]


@dataclass
class _C2:
    month: np.ndarray  # datetime64[D]
    customer: np.ndarray
    service: np.ndarray
    plan: np.ndarray
    seats: np.ndarray
    cents: np.ndarray


@dataclass
class _Data:
    models: list[_Model]
    countries: list[_Country]
    svr_customers: _Customers
    consumer_customers: _Customers
    svr_models: list[_Model]  # SVR-RM table (incl. unknown models at the end)
    consumer_models: list[_Model]
    svr: _Sales
    consumer: _Sales
    c2: _C2
    top: list[int]  # SVR-RM customer indexes, largest revenue first
    used_countries: list[int]
    stats: dict[str, SheetStats]


def _generate(
    spec: SampleSpec, start: datetime.date, end: datetime.date, models: list[_Model], countries: list[_Country]
) -> _Data:
    rng_customers, rng_svr, rng_consumer, rng_c2 = (
        np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(4)
    )
    n_quarters = len(quarters.quarter_range(start, quarters.quarter_start(end)))

    id_pool = rng_customers.choice(np.arange(100, 40_000), N_SVR_CUSTOMERS + N_CONSUMER_CUSTOMERS, replace=False)
    if not (id_pool[:N_SVR_CUSTOMERS] < 10_000).any():
        id_pool[0] = 412  # at least one numeric-looking id with leading zeros ("00412")
    namer = _NameMaker(rng_customers)
    svr_customers = _make_customers(
        rng_customers, id_pool[:N_SVR_CUSTOMERS], namer, countries, n_quarters, retail=False
    )
    consumer_customers = _make_customers(
        rng_customers, id_pool[N_SVR_CUSTOMERS:], namer, countries, n_quarters, retail=True
    )

    known = {m.name for m in models}
    unknown = [_Model(n, 16, None, "", p) for n, p in UNKNOWN_MODELS if n not in known]
    if not unknown:
        unknown = [_Model("RS9925RP+", 16, None, "", 4_999.0)]
    tiered = [m for m in models if m.tier]
    svr_models = tiered + unknown
    consumer_models = [m for m in models if m.tier is None]

    # Season = relative weight of Q1..Q4 (Q4 ~ +25% over the other quarters for servers).
    svr = _sales(
        rng_svr,
        spec.rows,
        start,
        end,
        svr_customers,
        svr_models,
        n_unknown_models=len(unknown),
        growth=math.log(1.16),
        season=(0.93, 1.0, 0.97, 1.23),
        weekend=(0.12, 0.05),
        channels=(SVR_CHANNELS, SVR_CHANNEL_P),
        unit_scale=6.0,
        tier_units={"T1": 0.55, "T2": 1.0, "T3": 1.35},
    )
    consumer = _sales(
        rng_consumer,
        spec.rows // 2,
        start,
        end,
        consumer_customers,
        consumer_models,
        n_unknown_models=0,
        growth=math.log(1.04),
        season=(0.95, 0.9, 0.97, 1.30),
        weekend=(0.55, 0.45),
        channels=(CONSUMER_CHANNELS, CONSUMER_CHANNEL_P),
        unit_scale=14.0,
        tier_units={},
    )
    c2 = _c2(rng_c2, start, end, svr_customers, svr)
    if spec.cutoff is not None:  # generated in full first: the history before the cut-off is the same
        svr, consumer, c2 = (_cut(x, np.datetime64(_as_date(spec.cutoff), "D")) for x in (svr, consumer, c2))

    revenue_by_customer = np.bincount(svr.customer, weights=svr.cents, minlength=N_SVR_CUSTOMERS)
    top = [int(i) for i in np.argsort(-revenue_by_customer, kind="stable")[:N_TOP_CUSTOMERS]]
    used = sorted(
        set(svr_customers.country[np.unique(svr.customer)].tolist())
        | set(consumer_customers.country[np.unique(consumer.customer)].tolist())
        | set(svr_customers.country[np.unique(c2.customer)].tolist())
    )

    n_known_svr = len(tiered)
    stats = {
        SHEET_SVR_RM: _sales_stats(svr, int((svr.model >= n_known_svr).sum())),
        SHEET_CONSUMER: _sales_stats(consumer, 0),
        SHEET_C2: SheetStats(
            rows=len(c2.seats),
            units_total=int(c2.seats.sum()),
            revenue_total=round(int(c2.cents.sum()) / 100, 2),
            unknown_models=0,
            quarters=_quarter_labels(c2.month),
        ),
        SHEET_TOP_CUSTOMERS: SheetStats(len(top), 0, 0.0, 0, []),
        SHEET_REGION_MAP: SheetStats(len(used), 0, 0.0, 0, []),
        SHEET_DEVICE_BAYS: SheetStats(len(models), 0, 0.0, 0, []),
    }
    return _Data(
        models,
        countries,
        svr_customers,
        consumer_customers,
        svr_models,
        consumer_models,
        svr,
        consumer,
        c2,
        top,
        used,
        stats,
    )


class _NameMaker:
    """Unique made-up account names: name stems in a shuffled cycle, a pattern per segment."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._stems = [NAME_STEMS[i] for i in rng.permutation(len(NAME_STEMS))]
        self._next = 0
        self._taken: set[str] = set()  # membership only, never iterated (hash order)

    def make(self, segment: str, legal: str) -> str:
        patterns = NAME_PATTERNS[segment]
        while True:
            stem = self._stems[self._next % len(self._stems)]
            round_ = self._next // len(self._stems)
            self._next += 1
            if round_ >= len(patterns):
                stem = f"{stem} {round_ - len(patterns) + 2}"
            name = patterns[int(self._rng.integers(len(patterns)))].format(s=stem, l=legal)
            if name not in self._taken:
                self._taken.add(name)
                return name


def _make_customers(
    rng: np.random.Generator,
    numbers: np.ndarray,
    namer: _NameMaker,
    countries: list[_Country],
    n_quarters: int,
    *,
    retail: bool,
) -> _Customers:
    n = len(numbers)
    # Heavy tail: Zipf-like weight by size rank, with lognormal noise; rank order is shuffled.
    size = (np.arange(1, n + 1, dtype=float) ** -1.0) * rng.lognormal(0.0, 0.25, n)
    size = size[rng.permutation(n)]
    order = np.argsort(-size, kind="stable")
    score = np.empty(n)
    score[order] = np.linspace(1.0, 0.0, n)

    weights = np.array([COUNTRY_WEIGHT.get(c.code, 1) for c in countries], dtype=float)
    country = rng.choice(len(countries), n, p=weights / weights.sum())
    if retail:
        segment = ["Retail"] * n
    else:
        segment = [SEGMENTS[i] for i in rng.choice(len(SEGMENTS), n, p=SEGMENT_P)]

    names = [namer.make(segment[i], LEGAL_SUFFIX.get(countries[country[i]].code, "Ltd")) for i in range(n)]

    owner = []
    for i in range(n):
        pool = ACCOUNT_OWNERS.get(countries[country[i]].region, DEFAULT_OWNERS)
        owner.append(pool[int(rng.integers(len(pool)))])

    # Primary channel; consumer accounts are e-tailers and resellers (Direct only occasionally).
    channel = rng.choice(4, n, p=(0.6, 0.4, 0.0, 0.0) if retail else SVR_CHANNEL_P)
    # Most accounts buy from the start; some are won later, a few are lost.
    first_q = np.where(rng.random(n) < 0.72, 0, rng.integers(0, max(n_quarters - 1, 1), n))
    last_q = np.where(rng.random(n) < 0.10, first_q + 4 + rng.integers(0, max(n_quarters, 1), n), n_quarters)
    big = order[:5]  # the largest accounts are long-standing
    first_q[big], last_q[big] = 0, n_quarters
    growth = rng.normal(0.0, 0.12, n)
    ids = [f"{int(x):05d}" for x in numbers]
    return _Customers(ids, names, country, segment, owner, size, score, channel, first_q, last_q, growth)


def _sales(
    rng: np.random.Generator,
    n: int,
    start: datetime.date,
    end: datetime.date,
    customers: _Customers,
    models: list[_Model],
    *,
    n_unknown_models: int,
    growth: float,
    season: Sequence[float],
    weekend: tuple[float, float],
    channels: tuple[tuple[str, ...], Sequence[float]],
    unit_scale: float,
    tier_units: dict[str, float],
) -> _Sales:
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    months = days.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    month_of_year = months % 12
    quarter_of_year = month_of_year // 3
    years = (days - days[0]).astype(np.int64) / 365.25
    weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday
    month_noise = rng.lognormal(0.0, 0.05, months[-1] - months[0] + 1)[months - months[0]]
    weight = (
        np.exp(growth * years)
        * np.asarray(season)[quarter_of_year]
        * month_noise
        * np.where(weekday == 5, weekend[0], np.where(weekday == 6, weekend[1], 1.0))
        * np.where(month_of_year % 3 == 2, 1.12, 1.0)
    )  # quarter-end push
    counts = rng.multinomial(n, weight / weight.sum())
    day = np.repeat(days, counts)
    line_q = np.repeat((months - months[0]) // 3, counts)
    line_years = np.repeat(years, counts)

    # Customer of each line: weight * activity * own growth, quarter by quarter.
    customer = np.empty(n, dtype=np.int64)
    bounds = np.searchsorted(line_q, np.arange(line_q[-1] + 2)) if n else np.array([0])
    for q in range(len(bounds) - 1):
        lo, hi = bounds[q], bounds[q + 1]
        if lo == hi:
            continue
        active = (customers.first_q <= q) & (q <= customers.last_q)
        p = customers.size * active * np.exp(customers.growth * line_years[lo])
        customer[lo:hi] = rng.choice(len(p), hi - lo, p=p / p.sum())
    score = customers.score[customer]

    # Model: bigger accounts buy higher tiers; popularity within a tier, cheaper sells more.
    n_known = len(models) - n_unknown_models
    popularity = rng.gamma(2.0, 1.0, n_known) / np.sqrt([m.price for m in models[:n_known]])
    if all(m.tier is None for m in models[:n_known]):
        model = rng.choice(n_known, n, p=popularity / popularity.sum())
    else:
        p_t1, p_t2 = 0.10 + 0.30 * score, 0.35 + 0.05 * score
        u = rng.random(n)
        tier_index = np.where(u < p_t1, 0, np.where(u < p_t1 + p_t2, 1, 2))
        model = np.empty(n, dtype=np.int64)
        for k, tier in enumerate(("T1", "T2", "T3")):
            members = [i for i, m in enumerate(models[:n_known]) if m.tier == tier] or list(range(n_known))
            mask = tier_index == k
            w = popularity[members]
            model[mask] = np.asarray(members)[rng.choice(len(members), int(mask.sum()), p=w / w.sum())]

    if n_unknown_models:
        k = int(round(n * UNKNOWN_MODEL_SHARE))
        if n >= 500:
            k = max(k, 1)
        recent = np.flatnonzero(line_q >= line_q[-1] - 1) if n else np.array([], dtype=np.int64)
        pool = recent if len(recent) >= k else np.arange(n)
        picked = rng.choice(pool, k, replace=False)
        model[picked] = n_known + rng.integers(0, n_unknown_models, k)

    tier_factor = np.array([tier_units.get(m.tier or "", 1.0) for m in models])[model]
    lam = (0.4 + unit_scale * score**1.5) * tier_factor * rng.lognormal(0.0, 0.35, n)
    units = 1 + rng.poisson(lam)
    returns = rng.random(n) < RETURN_SHARE
    units = np.where(returns, -np.minimum(units, 1 + rng.poisson(0.4, n)), units)

    channel_names, channel_p = channels
    channel = np.where(rng.random(n) < 0.8, customers.channel[customer], rng.choice(len(channel_names), n, p=channel_p))
    discount = (
        np.array([CHANNEL_DISCOUNT[c] for c in channel_names])[channel] + 0.06 * score + rng.uniform(-0.03, 0.03, n)
    )
    list_price = np.array([m.price for m in models])[model]
    cents = np.rint(units * list_price * (1.0 - discount) * 100.0).astype(np.int64)
    return _Sales(day, customer, model, units.astype(np.int64), cents, channel, channel_names)


def _c2(rng: np.random.Generator, start: datetime.date, end: datetime.date, customers: _Customers, svr: _Sales) -> _C2:
    """About half of the SVR-RM accounts subscribe, none before its first server purchase."""
    first_month = datetime.date(start.year, start.month, 1)
    n_months = end.year * 12 + end.month - (first_month.year * 12 + first_month.month) + 1
    n = len(customers.ids)
    month_of_line = (svr.day.astype("datetime64[M]") - np.datetime64(first_month, "M")).astype(np.int64)
    first_purchase = np.full(n, n_months, dtype=np.int64)
    np.minimum.at(first_purchase, svr.customer, month_of_line)
    buyers = first_purchase < n_months
    n_adopt = min((n + 1) // 2, int(buyers.sum()))
    affinity = (
        np.array([{"MSP": 2.0, "Enterprise": 1.3, "Education": 1.0}.get(s, 0.8) for s in customers.segment]) * buyers
    )
    adopters = rng.choice(n, n_adopt, replace=False, p=affinity / affinity.sum()) if n_adopt else np.zeros(0, int)
    # A few early adopters, then adoption accelerates (density rises over time).
    adopt = np.floor(n_months * np.sqrt(rng.random(n_adopt))).astype(np.int64)
    early = min(3, n_adopt)
    adopt[:early] = rng.integers(0, min(3, n_months), early)
    adopt = np.minimum(np.maximum(adopt, first_purchase[adopters]), n_months - 1)

    rows: list[tuple[int, str, int, int, int, int, int]] = []  # month, id, service, customer, plan, seats, cents
    for c, m0 in zip(adopters.tolist(), adopt.tolist()):
        score = customers.score[c]
        subs = [(int(rng.choice(len(C2_SERVICES), p=C2_FIRST_SERVICE_P)), m0)]
        for s in range(len(C2_SERVICES)):
            if s != subs[0][0] and rng.random() < 0.3:
                subs.append((s, m0 + 3 + int(rng.geometric(1 / 12))))
        plan = 1 if (score > 0.6 or rng.random() < 0.25) else 0
        discount = 0.05 + 0.15 * score
        for s, begin in subs:
            stop = begin + 6 + int(rng.geometric(1 / 18)) if rng.random() < 0.08 else n_months
            stop = min(stop, n_months)
            if begin >= stop:
                continue
            k = np.arange(stop - begin)
            seats0 = max(1.0, rng.lognormal(math.log(4 + 150 * score**2), 0.4))
            if C2_SERVICES[s] in ("C2 Identity", "C2 Password"):
                seats0 *= 2
            g = rng.uniform(0.008, 0.035)
            walk = np.cumsum(rng.normal(0.0, 0.015, len(k)))
            seats = np.maximum(1, np.rint(seats0 * np.exp(g * k + walk))).astype(np.int64)
            price = C2_SEAT_PRICE[C2_SERVICES[s]][plan] * (1 - discount)
            cents = np.rint(seats * price * 100).astype(np.int64)
            for j in range(len(k)):
                rows.append((begin + j, customers.ids[c], s, c, plan, int(seats[j]), int(cents[j])))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    column = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(7)]
    month = (np.datetime64(first_month, "M") + column[0]).astype("datetime64[D]")
    return _C2(month, customer=column[3], service=column[2], plan=column[4], seats=column[5], cents=column[6])


def _cut(data: _Sales | _C2, last_day: np.datetime64) -> _Sales | _C2:
    """Only the rows dated up to `last_day` (a C2 month row is dated on the month's first day)."""
    keep = (data.day if isinstance(data, _Sales) else data.month) <= last_day
    return dataclasses.replace(
        data,
        **{
            f.name: getattr(data, f.name)[keep]
            for f in dataclasses.fields(data)
            if isinstance(getattr(data, f.name), np.ndarray)
        },
    )


def _quarter_labels(day: np.ndarray) -> list[str]:
    if len(day) == 0:
        return []
    months = np.unique(day.astype("datetime64[M]")).astype("datetime64[D]").tolist()
    return sorted({quarter_label(m) for m in months})


def _sales_stats(sales: _Sales, unknown: int) -> SheetStats:
    return SheetStats(
        rows=len(sales.units),
        units_total=int(sales.units.sum()),
        revenue_total=round(int(sales.cents.sum()) / 100, 2),
        unknown_models=unknown,
        quarters=_quarter_labels(sales.day),
    )


# --------------------------------------------------------------------------- writing


# Data cells carry no `r` reference (optional in SpreadsheetML: a cell without one is in
# the column after the previous cell), which lets whole per-customer and per-model runs
# of cells be rendered once and reused. Only the cell after a blank (omitted) Tier cell
# names its column. Rows keep their `r`.
_S = '<c t="inlineStr"><is><t>'
_E = "</t></is></c>"


def _cells(*texts: str | None) -> str:
    return "".join(f"{_S}{escape(t)}{_E}" for t in texts if t)


def _fragments(fragments: Sequence[str], index: np.ndarray) -> list[str]:
    return np.array(fragments, dtype=object)[index].tolist()


def _sales_rows(
    data: _Data, sales: _Sales, customers: _Customers, models: list[_Model], date_style: int
) -> Iterator[bytes]:
    """`<row>` XML of a sales sheet from row 2 on, in chunks; one f-string per row (no concatenation)."""
    customer_cells = [
        _cells(data.countries[c].region, data.countries[c].code, cid, name)
        for c, cid, name in zip(customers.country.tolist(), customers.ids, customers.names)
    ]
    model_cells = [_cells(m.name, m.tier) for m in models]
    tier_blank = np.array([not m.tier for m in models])
    channel_cells = [_cells(c) + "</row>" for c in sales.channel_names]
    n = len(sales.units)
    for lo in range(0, n, ROWS_PER_CHUNK):
        sl = slice(lo, min(n, lo + ROWS_PER_CHUNK))
        columns = (
            range(lo + 2, sl.stop + 2),
            (sales.day[sl] - EXCEL_EPOCH).astype(np.int64).tolist(),
            _fragments(customer_cells, sales.customer[sl]),
            _fragments(model_cells, sales.model[sl]),
            tier_blank[sales.model[sl]].tolist(),
            sales.units[sl].tolist(),
            (sales.cents[sl] / 100).tolist(),
            _fragments(channel_cells, sales.channel[sl]),
        )
        yield "".join(
            [
                f'<row r="{r}"><c s="{date_style}"><v>{d}</v></c>{cust}{model}<c><v>{u}</v></c><c><v>{v}</v></c>{chan}'
                if not blank
                else f'<row r="{r}"><c s="{date_style}"><v>{d}</v></c>{cust}{model}<c r="H{r}"><v>{u}</v></c>'
                f'<c><v>{v}</v></c>{chan}'
                for r, d, cust, model, blank, u, v, chan in zip(*columns)
            ]
        ).encode("utf-8")


def _c2_rows(data: _Data, date_style: int) -> Iterator[bytes]:
    c2, customers = data.c2, data.svr_customers
    customer_cells = [
        _cells(cid, name, data.countries[c].region)
        for c, cid, name in zip(customers.country.tolist(), customers.ids, customers.names)
    ]
    plan_cells = [_cells(service, plan) for service in C2_SERVICES for plan in C2_PLANS]
    columns = (
        range(2, len(c2.seats) + 2),
        (c2.month - EXCEL_EPOCH).astype(np.int64).tolist(),
        _fragments(customer_cells, c2.customer),
        _fragments(plan_cells, c2.service * len(C2_PLANS) + c2.plan),
        c2.seats.tolist(),
        (c2.cents / 100).tolist(),
    )
    yield "".join(
        [
            f'<row r="{r}"><c s="{date_style}"><v>{d}</v></c>{cust}{plan}<c><v>{seats}</v></c><c><v>{v}</v></c></row>'
            for r, d, cust, plan, seats, v in zip(*columns)
        ]
    ).encode("utf-8")


@dataclass
class _Body:
    """Data rows of one sheet, rendered while they are spliced into the part openpyxl writes."""

    chunks: Callable[[], Iterator[bytes]]
    rows: int
    last_column: str

    @property
    def may_exceed_2gib(self) -> bool:  # decided from the spec alone, so the bytes stay deterministic
        return self.rows * 700 > 0.9 * zipfile.ZIP64_LIMIT

    def splice(self, shell: bytes) -> tuple[bytes, bytes]:
        """Split openpyxl's sheet XML before its `</sheetData>`; add the sheet dimension."""
        end = shell.rfind(b"</sheetData>")
        if end < 0 or b"<dimension" in shell:
            raise RuntimeError("unexpected worksheet XML from openpyxl; cannot add the sample rows")
        dimension = f'<dimension ref="A1:{self.last_column}{self.rows + 1}" />'.encode()
        found = (shell.find(tag) for tag in (b"<sheetViews", b"<sheetFormatPr", b"<cols", b"<sheetData"))
        anchor = min(i for i in found if i >= 0)
        return shell[:anchor] + dimension + shell[anchor:end], shell[end:]


def _pipe(chunks: Iterator[bytes], write: Callable[[bytes], object]) -> None:
    """Render on this thread while another one compresses (zlib releases the GIL)."""
    queue: Queue[bytes | None] = Queue(maxsize=2)
    failure: list[BaseException] = []

    def consume() -> None:
        while (chunk := queue.get()) is not None:
            if not failure:
                try:
                    write(chunk)
                except BaseException as exc:  # noqa: BLE001 - re-raised on the producing thread
                    failure.append(exc)

    worker = threading.Thread(target=consume, name="sample-zip-writer", daemon=True)
    worker.start()
    try:
        for chunk in chunks:
            if failure:
                break
            queue.put(chunk)
    finally:
        queue.put(None)
        worker.join()
    if failure:
        raise failure[0]


class _DeterministicZipFile(zipfile.ZipFile):
    """Zip archive whose entries all carry one fixed timestamp, with the sample rows spliced in."""

    def __init__(self, file: Path, date_time: tuple[int, int, int, int, int, int], bodies: dict[str, _Body]):
        super().__init__(file, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self._date_time = date_time
        self._bodies = dict(bodies)

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = self.compression
        info.external_attr = 0o600 << 16
        return info

    def writestr(self, zinfo_or_arcname, data, compress_type=None, compresslevel=None):
        name = zinfo_or_arcname.filename if isinstance(zinfo_or_arcname, zipfile.ZipInfo) else zinfo_or_arcname
        super().writestr(
            self._info(name),
            data,
            compress_type=compress_type,
            compresslevel=self.compresslevel if compresslevel is None else compresslevel,
        )

    def write(self, filename, arcname=None, compress_type=None, compresslevel=None):
        name = arcname if arcname is not None else os.path.basename(filename)
        shell = Path(filename).read_bytes()
        body = self._bodies.pop(name, None)
        if body is None:
            self.writestr(name, shell, compress_type, compresslevel)
            return
        head, tail = body.splice(shell)
        with self.open(self._info(name), "w", force_zip64=body.may_exceed_2gib) as dest:
            dest.write(head)
            _pipe(body.chunks(), dest.write)
            dest.write(tail)

    def unused_bodies(self) -> list[str]:
        return sorted(self._bodies)


def _write_workbook(path: Path, data: _Data, stamp: datetime.datetime) -> None:
    wb = Workbook(write_only=True)
    wb.properties.creator = "synoforecast sample generator"
    wb.properties.title = f"Synology Sale-out Report (sample) - as of {stamp.date().isoformat()}"
    wb.properties.created = stamp
    wb.properties.modified = stamp

    svr = wb.create_sheet(SHEET_SVR_RM)
    consumer = wb.create_sheet(SHEET_CONSUMER)
    c2 = wb.create_sheet(SHEET_C2)
    date_style = WriteOnlyCell(svr, value=DATE_STYLE_PROBE).style_id  # registers the date format
    sales_widths, c2_widths = (11, 14, 8, 12, 36, 12, 6, 8, 14, 12), (11, 12, 36, 14, 12, 10, 8, 12)
    for ws, header, widths in (
        (svr, SALES_HEADER, sales_widths),
        (consumer, SALES_HEADER, sales_widths),
        (c2, C2_HEADER, c2_widths),
    ):
        ws.freeze_panes = "A2"
        for i, width in enumerate(widths):
            ws.column_dimensions[chr(ord("A") + i)].width = width
        ws.append(header)
    # ExcelWriter names worksheet parts by position: xl/worksheets/sheet<N>.xml
    bodies = {
        "xl/worksheets/sheet1.xml": _Body(
            lambda: _sales_rows(data, data.svr, data.svr_customers, data.svr_models, date_style),
            len(data.svr.units),
            "J",
        ),
        "xl/worksheets/sheet2.xml": _Body(
            lambda: _sales_rows(data, data.consumer, data.consumer_customers, data.consumer_models, date_style),
            len(data.consumer.units),
            "J",
        ),
        "xl/worksheets/sheet3.xml": _Body(lambda: _c2_rows(data, date_style), len(data.c2.seats), "H"),
    }

    top = wb.create_sheet(SHEET_TOP_CUSTOMERS)
    top.append(TOP_CUSTOMERS_HEADER)
    cs = data.svr_customers
    for i in data.top:
        top.append((cs.ids[i], cs.names[i], cs.segment[i], cs.owner[i]))

    region_map = wb.create_sheet(SHEET_REGION_MAP)
    region_map.append(REGION_MAP_HEADER)
    for i in data.used_countries:
        region_map.append((data.countries[i].code, data.countries[i].region))

    bays = wb.create_sheet(SHEET_DEVICE_BAYS)
    bays.append(DEVICE_BAYS_HEADER)
    for m in data.models:
        bays.append((m.name, m.bays, m.tier, m.form_factor or None))

    with _DeterministicZipFile(path, stamp.timetuple()[:6], bodies) as archive:
        ExcelWriter(wb, archive).write_data()
        if archive.unused_bodies():
            raise RuntimeError(f"openpyxl did not write the expected sheet parts {archive.unused_bodies()}")
