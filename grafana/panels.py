"""Panel, query and variable helpers over grafana-foundation-sdk shared by the dashboards.

Every panel reads its data source from the ``$datasource`` variable (the global Prometheus by
default, any shard on request), and every query reads recorded series
(prometheus/rules/*.yml) or the fleetmon components' own metrics. On the global Prometheus a
host arrives once per replica of its shard, so per-host queries aggregate with ``max by``.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, dashboard, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import prometheus as pm

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
GLOBAL_DS_UID = "fleetmon-global"
GLOBAL_DS_NAME = "fleetmon global"
FLEET_FILTER = 'datacenter=~"$datacenter",role=~"$role"'


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
          fmt: pm.PromQueryFormat | None = None) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    q = q.legend_format(legend or "__auto")
    if instant:
        q = q.instant()
    else:
        q = q.range()
    if fmt is not None:
        q = q.format(fmt)
    return q


def _targets(panel, queries: list[tuple[str, str]], instant: bool = False, fmt=None):
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, ref=chr(ord("A") + i), instant=instant, fmt=fmt))
    return panel


def ts(title: str, queries: list[tuple[str, str]], unit: str = "short", description: str = "",
       stack: bool = False, min_val: float | None = 0, max_val: float | None = None):
    p = (timeseries.Panel().title(title).datasource(DS).unit(unit)
         .legend(_legend())
         .line_width(1).fill_opacity(10 if not stack else 60))
    if description:
        p = p.description(description)
    if stack:
        p = p.stacking(common_stacking())
    if min_val is not None:
        p = p.min(min_val)
    if max_val is not None:
        p = p.max(max_val)
    return _targets(p, queries)


def _legend():
    return (cb.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM).calcs(["lastNotNull", "max"]))


def common_stacking():
    return cb.StackingConfig().mode(common.StackingMode.NORMAL).group("A")


def stat_panel(title: str, expr: str, unit: str = "short", legend: str = "", description: str = "",
               thresholds: list[tuple[float | None, str]] | None = None):
    p = (stat.Panel().title(title).datasource(DS).unit(unit)
         .graph_mode(common.BigValueGraphMode.AREA).color_mode(common.BigValueColorMode.VALUE)
         .reduce_options(_reduce()))
    if description:
        p = p.description(description)
    p = p.thresholds(_thresholds(thresholds or [(None, "green")]))
    return p.with_target(query(expr, legend))


def _reduce():
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _thresholds(steps: list[tuple[float | None, str]]):
    return (dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=v, color=c) for v, c in steps]))


PERCENT_STEPS = [(None, "green"), (80, "orange"), (90, "red")]


def table_panel(title: str, queries: list[tuple[str, str]], description: str = "", unit: str = "short"):
    """An instant table: one row per series, its labels as columns, values merged."""
    p = table.Panel().title(title).datasource(DS).unit(unit)
    if description:
        p = p.description(description)
    p = _targets(p, queries, instant=True, fmt=pm.PromQueryFormat.TABLE)
    p = p.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    # Each query's value column is "Value #<refId>" (or "Value" alone): name it by its legend.
    if len(queries) > 1:
        rename = {f"Value #{chr(ord('A') + i)}": legend for i, (_, legend) in enumerate(queries) if legend}
    else:
        rename = {"Value": queries[0][1]} if queries[0][1] else {}
    p = p.with_transformation(dm.DataTransformerConfig(
        id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": rename}))
    return p


def topn_panel(title: str, expr: str, unit: str = "percent", description: str = "",
               max_val: float | None = 100, steps=None):
    p = (bargauge.Panel().title(title).datasource(DS).unit(unit).min(0)
         .display_mode(common.BarGaugeDisplayMode.GRADIENT)
         .orientation(common.VizOrientation.HORIZONTAL)
         .reduce_options(_reduce())
         .thresholds(_thresholds(steps or PERCENT_STEPS)))
    if max_val is not None:
        p = p.max(max_val)
    if description:
        p = p.description(description)
    p = p.data_links([host_link()])
    return p.with_target(query(expr, "{{instance}}", instant=True))


HOST_DASHBOARD_UID = "fleetmon-host"


def host_link():
    """A data link from a per-host value to the Host detail dashboard of that host."""
    return (dashboard.DashboardLink("Host detail: ${__field.labels.instance}")
            .url(f"/d/{HOST_DASHBOARD_UID}/host-detail?var-datasource=${{datasource}}"
                 "&var-host=${__field.labels.instance}&${__url_time_range}"))


def heatmap_panel(title: str, expr: str, unit: str = "percent", description: str = ""):
    """The distribution of a per-host indicator over the fleet, bucketed by Grafana."""
    p = (heatmap.Panel().title(title).datasource(DS)
         .calculate(True)
         .color(heatmap_color())
         .y_axis(heatmap.YAxisConfig().unit(unit))
         .cell_gap(1)
         .show_legend())
    if description:
        p = p.description(description)
    return p.with_target(query(expr, "{{instance}}"))


def heatmap_color():
    return heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Oranges").steps(64)


# ----------------------------------------------------------------------------- variables

def datasource_variable() -> dashboard.DatasourceVariable:
    return (dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
            .current(dm.VariableOption(selected=True, text=GLOBAL_DS_NAME, value=GLOBAL_DS_UID)))


def query_variable(name: str, label: str, expr: str, multi: bool = True, include_all: bool = True):
    v = (dashboard.QueryVariable(name).label(label).datasource(DS).query(expr)
         .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
         .multi(multi).include_all(include_all))
    if include_all:
        v = v.all_value(".*")
    return v


# ----------------------------------------------------------------------------- layout

class Grid:
    """Sizes panels; the SDK flows them left to right on Grafana's 24-column grid and starts
    a new line after each row header or when a line is full."""

    @staticmethod
    def place(panel, w: int, h: int):
        return panel.span(w).height(h)

    @staticmethod
    def row(title: str):
        return dashboard.Row(title)


def new_dashboard(uid: str, title: str, description: str, tags: list[str]) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(["fleetmon", *tags])
            .time("now-3h", "now").refresh("1m").timezone("browser").editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .link(dashboard.DashboardLink("fleetmon").type(dm.DashboardLinkType.DASHBOARDS)
                  .tags(["fleetmon"]).as_dropdown(True).include_vars(True).keep_time(True)))
