/* The read-only page of a saved scenario (tuoyu_api.scenario_export.html_page), MIT licence.
 *
 * Draws what the page embeds (script#wb-export-data, WGS84): the 街道 coloured by their
 * change, the gap zones left after the scenario, the planned facilities' isochrones, the
 * existing facilities (those left out marked) and the planned ones. Nothing can be
 * edited. On a GCJ-02 basemap (高德) every overlay is drawn converted with tuoyu.toGcj, as
 * the workbench does. Text from the data is only ever set with textContent.
 *
 * State for the browser tests: window.tuoyuScenarioView (ready, drawn counts, map).
 */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("wb-export-data").textContent);
  var T = window.tuoyu;
  var view = { ready: false, datum: "wgs84", drawn: {}, map: null, error: null };
  window.tuoyuScenarioView = view;

  function el(tag, text, className) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }
  function people(v) {
    return v === null || v === undefined ? "—" : Math.round(v).toLocaleString("zh-CN");
  }
  function coordsTo(coords, datum) {
    if (typeof coords[0] === "number") return datum === "gcj02" ? T.toGcj(coords[0], coords[1]) : coords;
    return coords.map(function (c) { return coordsTo(c, datum); });
  }
  function geometryTo(geom, datum) {
    if (!geom || datum === "wgs84") return geom;
    if (geom.type === "GeometryCollection") {
      return { type: geom.type, geometries: geom.geometries.map(function (g) { return geometryTo(g, datum); }) };
    }
    return { type: geom.type, coordinates: coordsTo(geom.coordinates, datum) };
  }
  function point(lon, lat) {
    var p = view.datum === "gcj02" ? T.toGcj(lon, lat) : [lon, lat];
    return [p[1], p[0]];
  }
  function rows(box, lines) {
    lines.forEach(function (l) { box.appendChild(el("div", l)); });
    return box;
  }

  var made = tuoyuWorkbenchMap(
    data.basemaps, "方案后缺口区 / gap zones after the scenario", true, data.bounds
  );
  var map = made.map;
  view.map = map;
  if (made.first) view.datum = made.first.datum;
  var unitsLayer = made.layers.units;
  var gapsLayer = made.layers.gaps;
  var isoLayer = made.layers.iso;
  var facilitiesLayer = made.layers.facilities;
  var plannedLayer = made.layers.planned;
  map.attributionControl.addAttribution("tuoyu-coverage");

  var gaps = data.gaps;
  var breaks = gaps && gaps.breaks ? gaps.breaks : [];
  var colors = gaps && gaps.colors ? gaps.colors : ["#fd8d3c"];
  function gapColor(v) {
    var i = 0;
    while (i < breaks.length && v >= breaks[i]) i++;
    return colors[Math.min(i, colors.length - 1)];
  }

  function drawUnits() {
    unitsLayer.clearLayers();
    var n = 0;
    ((data.units && data.units.features) || []).forEach(function (f) {
      if (!f.geometry) return;
      var delta = data.changes[f.properties.code];
      unitsLayer.addLayer(L.geoJSON(geometryTo(f.geometry, view.datum), {
        interactive: false,
        style: {
          color: "#1f4e79", weight: 1.6, opacity: 0.9,
          fillColor: delta > 0 ? "#43a047" : delta < 0 ? "#e53935" : "#1f4e79",
          fillOpacity: delta && Math.abs(delta) >= 0.5 ? 0.14 : 0.02
        }
      }));
      n++;
    });
    view.drawn.units = n;
  }

  function drawGaps() {
    gapsLayer.clearLayers();
    var n = 0;
    ((gaps && gaps.features) || []).forEach(function (f) {
      if (!f.geometry) return;
      var p = f.properties;
      var layer = L.geoJSON(geometryTo(f.geometry, view.datum), {
        pane: "wbGaps",
        style: { color: "#a63603", weight: 0.8, opacity: 0.9, fillColor: gapColor(p.population || 0), fillOpacity: 0.6 }
      });
      var tip = rows(el("div"), [
        "缺口区 #" + p.gap_id + " / gap zone",
        "居民 / residents: " + people(p.population) + " 人",
        "3岁以下 / under 3: " + people(p.population_under3) + " 人"
      ]);
      if (p.unit_names) tip.appendChild(el("div", "街道: " + p.unit_names.split(",").join("、")));
      layer.bindTooltip(tip, { sticky: true });
      gapsLayer.addLayer(layer);
      n++;
    });
    view.drawn.gaps = n;
  }

  function drawIsochrones() {
    isoLayer.clearLayers();
    var n = 0;
    ((data.isochrones && data.isochrones.features) || []).forEach(function (f) {
      if (!f.geometry) return;
      isoLayer.addLayer(L.geoJSON(geometryTo(f.geometry, view.datum), {
        interactive: false,
        style: { color: "#e65100", weight: 1.2, opacity: 0.9, fillColor: "#ffcc80", fillOpacity: 0.35 }
      }));
      n++;
    });
    view.drawn.isochrones = n;
  }

  function drawFacilities() {
    facilitiesLayer.clearLayers();
    var removed = new Set(data.removed || []);
    var n = 0;
    (data.existing || []).forEach(function (f) {
      if (f.lon === null || f.lon === undefined || f.lat === null || f.lat === undefined) return;
      var out = removed.has(f.id);
      var marker = L.circleMarker(point(f.lon, f.lat), {
        radius: 6, weight: out ? 2 : 1.2,
        color: out ? "#b00020" : "#ffffff", dashArray: out ? "3 2" : null,
        fillColor: out ? "#bdbdbd" : f.puhui === true ? "#2e7d32" : "#607d8b",
        fillOpacity: out ? 0.5 : 0.95
      });
      var box = el("div");
      box.appendChild(el("b", f.name || f.id));
      rows(box, [
        (f.kind || "类型不详 kind unknown"),
        "普惠 / subsidised: " + (f.puhui === true ? "是 yes" : f.puhui === false ? "否 no" : "不详 unknown"),
        "托位 / slots: " + (f.slots === null || f.slots === undefined ? "不详 unknown" : f.slots)
      ]);
      if (out) box.appendChild(el("div", "方案中关闭 / left out in this scenario", "down"));
      marker.bindPopup(box);
      facilitiesLayer.addLayer(marker);
      n++;
    });
    view.drawn.existing = n;
  }

  function drawPlanned() {
    plannedLayer.clearLayers();
    var n = 0;
    (data.added || []).forEach(function (p, i) {
      if (p.lon_wgs84 === null || p.lon_wgs84 === undefined) return;
      var marker = L.marker(point(p.lon_wgs84, p.lat_wgs84), {
        keyboard: false,
        icon: L.divIcon({ className: "wb-planned-icon", html: String(i + 1), iconSize: [22, 22] })
      });
      var box = el("div");
      box.appendChild(el("b", "规划机构 #" + (i + 1) + " / planned"));
      rows(box, [
        p.name || p.id,
        (p.kind || "—") + " · " + (p.puhui ? "普惠" : "非普惠") + " · 托位 slots " + (p.slots === null || p.slots === undefined ? "—" : p.slots),
        p.lon_wgs84.toFixed(6) + ", " + p.lat_wgs84.toFixed(6) + " (WGS84)"
      ]);
      marker.bindPopup(box);
      plannedLayer.addLayer(marker);
      n++;
    });
    view.drawn.planned = n;
  }

  function legend() {
    var control = L.control({ position: "bottomright" });
    control.onAdd = function () {
      var box = el("div", null, "legend");
      box.id = "legend";
      L.DomEvent.disableClickPropagation(box);
      function item(kind, color, text) {
        var div = el("div");
        div.appendChild(el("span", null, kind));
        div.firstChild.style.background = color;
        div.appendChild(document.createTextNode(text));
        box.appendChild(div);
      }
      box.appendChild(el("b", "机构 / facilities"));
      item("dot", "#2e7d32", "普惠机构 / 普惠");
      item("dot", "#607d8b", "非普惠或不详 / other");
      item("dot", "#bdbdbd", "方案中关闭 / left out");
      item("dot", "#e65100", "规划新增 / planned");
      item("swatch", "#ffcc80", data.minutes + " 分钟步行等时圈 / " + data.minutes + "-min walk (" + people(data.walkM) + " m)");
      if (gaps) {
        var merge = gaps.merge_distance_m;
        box.appendChild(el("b", "方案后缺口区 / gap zones after the scenario"));
        box.appendChild(el("div", "每片居民（人）/ residents per zone"));
        var edges = [0].concat(breaks);
        colors.slice(0, edges.length).forEach(function (c, i) {
          var text = i === edges.length - 1
            ? "≥ " + people(edges[i]) + " 人 / residents"
            : people(edges[i]) + "–" + people(edges[i + 1]) + " 人 / residents";
          item("swatch", c, text);
        });
        box.appendChild(el("div", "相距 ≤ " + (merge === null || merge === undefined ? "—" : merge) +
          " 米的圈外人口点合并为一片 / uncovered points within " +
          (merge === null || merge === undefined ? "—" : merge) + " m form one zone", "muted"));
        if (gaps.shown < gaps.zones) {
          box.appendChild(el("div", "显示 " + gaps.shown + " / " + gaps.zones + " 片（最多 " + gaps.max_zones + "）/ " +
            gaps.shown + " of " + gaps.zones + " zones drawn (cap " + gaps.max_zones + ")", "muted"));
        }
      }
      box.appendChild(el("b", "街道 / sub-districts"));
      item("swatch", "#43a047", "覆盖居民增加 / more residents covered");
      item("swatch", "#e53935", "覆盖居民减少 / fewer covered");
      return box;
    };
    control.addTo(map);
  }

  function drawAll() {
    drawUnits();
    drawGaps();
    drawIsochrones();
    drawFacilities();
    drawPlanned();
  }

  map.on("baselayerchange", function (e) {
    view.datum = e.layer.wbDatum || "wgs84";
    drawAll();
  });

  try {
    drawAll();
    legend();
  } catch (e) {
    view.error = String(e);
    throw e;
  } finally {
    view.ready = true;
  }
})();
