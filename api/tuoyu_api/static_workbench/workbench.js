/* The planner's scenario workbench (tuoyu_api.routers.workbench), MIT licence.
 *
 * Data come from this service only: the facilities (GET …/facilities), the 街道 polygons
 * (GET …/workbench/units), the gap zones now (GET …/workbench/gaps), the what-if
 * (POST …/scenarios?isochrone_minutes=…&gaps=true: before/after per 街道, the planned
 * isochrones and the gap zones left after the change) and the saved scenarios
 * (…/saved-scenarios). Positions in the API are WGS84; on a GCJ-02
 * basemap (高德) every overlay is drawn converted to GCJ-02 with tuoyu.toGcj (the
 * project's formula, static/tuoyu_maps.js) and a click is recorded in GCJ-02 and sent
 * with crs=gcj02, which the server converts, exactly as the facility map does.
 *
 * State for the browser tests: window.tuoyuWorkbench (ready, busy, planned, result, …).
 */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("wb-config").textContent);
  var base = window.location.pathname.replace(/\/workbench\/?$/, "");
  var T = window.tuoyu;
  var $ = function (id) { return document.getElementById(id); };
  var st = {
    ready: false, busy: false, datum: "wgs84", basemap: null, planned: [], removed: new Set(),
    facilities: [], units: null, gapsNow: null, result: null, saved: [], seq: 0, nextKey: 1,
    evaluations: 0, error: null, map: null
  };
  window.tuoyuWorkbench = st;

  /* ---- small helpers ------------------------------------------------------------------ */

  function round6(v) { return Math.round(v * 1e6) / 1e6; }

  // [lon, lat] from one datum to another (tuoyu.toGcj / tuoyu.fromGcj).
  function convert(lon, lat, from, to) {
    if (from === to) return [lon, lat];
    if (from === "wgs84" && to === "gcj02") return T.toGcj(lon, lat);
    if (from === "gcj02" && to === "wgs84") {
      var w = T.fromGcj(lon, lat);
      return [round6(w[0]), round6(w[1])];
    }
    return [lon, lat];
  }

  function coordsTo(coords, datum) {
    if (typeof coords[0] === "number") return convert(coords[0], coords[1], "wgs84", datum);
    return coords.map(function (c) { return coordsTo(c, datum); });
  }

  function geometryTo(geom, datum) {
    if (!geom || datum === "wgs84") return geom;
    if (geom.type === "GeometryCollection") {
      return { type: geom.type, geometries: geom.geometries.map(function (g) { return geometryTo(g, datum); }) };
    }
    return { type: geom.type, coordinates: coordsTo(geom.coordinates, datum) };
  }

  function people(v) {
    return v === null || v === undefined ? "—" : Math.round(v).toLocaleString("zh-CN");
  }
  function signed(v, digits) {
    if (v === null || v === undefined) return "—";
    var r = digits ? Number(v.toFixed(digits)) : Math.round(v);
    if (r === 0) return digits ? (0).toFixed(digits) : "0";
    var text = digits ? Math.abs(r).toFixed(digits) : Math.abs(r).toLocaleString("zh-CN");
    return (r > 0 ? "+" : "−") + text;
  }
  function pct(v) { return v === null || v === undefined ? "—" : v.toFixed(2); }
  function cls(v) {
    if (v === null || v === undefined) return "same";
    return v > 1e-9 ? "up" : v < -1e-9 ? "down" : "same";
  }
  function say(text, kind) {
    $("status").textContent = text;
    $("status").className = kind || "";
  }
  function el(tag, text, className) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }
  function cell(row, text, className, value) {
    var td = el("td", text, className);
    if (value !== undefined) td.dataset.value = value === null ? "" : String(value);
    row.appendChild(td);
    return td;
  }
  function bilingual(zh, en) {
    var span = el("span", zh + " ");
    span.appendChild(el("span", en, "en"));
    return span;
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  async function call(method, path, body, withToken) {
    var headers = { "Content-Type": "application/json" };
    var token = $("token").value.trim();
    if (withToken && token) headers["Authorization"] = "Bearer " + token;
    for (var attempt = 0; ; attempt++) {
      var r = await fetch(base + path, {
        method: method, headers: headers, body: body ? JSON.stringify(body) : undefined
      });
      if ((r.status === 429 || r.status === 503) && attempt < 3) {
        var wait = parseFloat(r.headers.get("Retry-After") || "1");
        say("服务器繁忙，" + wait + " 秒后重试 / server busy, retrying in " + wait + " s", "busy");
        await sleep(Math.min(wait, 10) * 1000);
        continue;
      }
      if (r.status === 204) return null;
      var data = await r.json().catch(function () { return null; });
      if (!r.ok) {
        var err = new Error(data && data.error ? data.error.message : "HTTP " + r.status);
        err.status = r.status;
        err.field = data && data.error ? data.error.field : null;
        throw err;
      }
      return data;
    }
  }

  /* ---- the map -------------------------------------------------------------------------- */

  var made = tuoyuWorkbenchMap(cfg.basemaps, "缺口区（圈外居民）/ gap zones", false, cfg.bounds);
  var map = made.map;
  st.map = map;
  if (made.first) {
    st.datum = made.first.datum;
    st.basemap = made.first.name;
  }
  var unitsLayer = made.layers.units;
  var gapsLayer = made.layers.gaps;
  var isoLayer = made.layers.iso;
  var facilitiesLayer = made.layers.facilities;
  var plannedLayer = made.layers.planned;

  map.on("baselayerchange", function (e) {
    st.datum = e.layer.wbDatum || "wgs84";
    st.basemap = e.layer.wbName || e.name;
    showDatum();
    drawAll();
  });
  map.on("click", function (e) { addPlanned(e.latlng); });

  function showDatum() {
    var box = $("datum");
    box.replaceChildren();
    var gcj = st.datum === "gcj02";
    box.appendChild(el("div",
      "点击位置按当前底图的坐标系记录：" + (gcj ? "GCJ-02" : "WGS84") + "（" + st.basemap + "）" +
      (gcj ? "，提交时注明 crs=gcj02，由服务器换算为 WGS84。" : "，服务器按 WGS84 计算。")));
    box.appendChild(el("div",
      "Clicks are recorded in the basemap's datum: " + (gcj ? "GCJ-02" : "WGS84") + " (" +
      st.basemap + ")" + (gcj ? ", sent with crs=gcj02 and converted to WGS84 by the server."
        : "; the server computes in WGS84."), "en"));
  }

  /* ---- layers ------------------------------------------------------------------------------ */

  function drawUnits() {
    unitsLayer.clearLayers();
    if (!st.units) return;
    var changed = {};
    if (st.result) {
      st.result.changes.forEach(function (c) {
        if (c.covered_change !== null && Math.abs(c.covered_change) >= 0.5) changed[c.code] = c.covered_change;
      });
    }
    st.units.features.forEach(function (f) {
      if (!f.geometry) return;
      var delta = changed[f.properties.code];
      var layer = L.geoJSON(geometryTo(f.geometry, st.datum), {
        interactive: false,
        style: {
          color: "#1f4e79", weight: 1.6, opacity: 0.9,
          fillColor: delta > 0 ? "#43a047" : delta < 0 ? "#e53935" : "#1f4e79",
          fillOpacity: delta ? 0.16 : 0.02
        }
      });
      unitsLayer.addLayer(layer);
    });
  }

  function facilityPopup(f) {
    var p = f.properties;
    var box = el("div");
    box.appendChild(el("b", p.name || p.id));
    box.appendChild(el("div", (p.kind || "类型不详") + (p.kind_en ? " / " + p.kind_en : "")));
    box.appendChild(el("div", "普惠 / subsidised: " + (p.puhui === true ? "是 yes" : p.puhui === false ? "否 no" : "不详 unknown")));
    box.appendChild(el("div", "托位 / slots: " + (p.slots === null || p.slots === undefined ? "不详 unknown" : p.slots)));
    var removed = st.removed.has(p.id);
    var b = el("button", removed ? "恢复（不关闭）/ Keep it" : "在方案中关闭 / Leave out in scenario");
    b.type = "button";
    b.dataset.facility = p.id;
    b.addEventListener("click", function () {
      if (st.removed.has(p.id)) st.removed.delete(p.id); else st.removed.add(p.id);
      map.closePopup();
      drawAll();
      evaluate();
    });
    box.appendChild(b);
    return box;
  }

  function drawFacilities() {
    facilitiesLayer.clearLayers();
    st.facilities.forEach(function (f) {
      var c = f.geometry.coordinates;
      var pos = convert(c[0], c[1], "wgs84", st.datum);
      var removed = st.removed.has(f.properties.id);
      var marker = L.circleMarker([pos[1], pos[0]], {
        radius: 6, weight: removed ? 2 : 1.2, bubblingMouseEvents: false,
        color: removed ? "#b00020" : "#ffffff", dashArray: removed ? "3 2" : null,
        fillColor: removed ? "#bdbdbd" : f.properties.puhui === true ? "#2e7d32" : "#607d8b",
        fillOpacity: removed ? 0.5 : 0.95
      });
      marker.bindTooltip(el("span", f.properties.name || f.properties.id));
      marker.on("click", function () {
        L.popup().setLatLng(marker.getLatLng()).setContent(facilityPopup(f)).openOn(map);
      });
      marker.wbFacility = f.properties.id;
      facilitiesLayer.addLayer(marker);
    });
  }

  function plannedPopup(p, n) {
    var box = el("div");
    box.appendChild(el("b", "规划机构 #" + n + " / planned"));
    box.appendChild(el("div", p.kind + " · " + (p.puhui ? "普惠" : "非普惠") + " · 托位 " + p.slots));
    box.appendChild(el("div", p.lon.toFixed(6) + ", " + p.lat.toFixed(6) + " (" + p.crs.toUpperCase() + ")", "muted"));
    var b = el("button", "移除 / Remove");
    b.type = "button";
    b.className = "wb-remove";
    b.addEventListener("click", function () { removePlanned(p.key); });
    box.appendChild(b);
    return box;
  }

  function drawPlanned() {
    plannedLayer.clearLayers();
    st.planned.forEach(function (p, i) {
      var pos = convert(p.lon, p.lat, p.crs, st.datum);
      var marker = L.marker([pos[1], pos[0]], {
        draggable: true,
        title: "规划机构 #" + (i + 1),
        icon: L.divIcon({ className: "wb-planned-icon", html: String(i + 1), iconSize: [22, 22] })
      });
      marker.on("dragend", function () {
        var ll = marker.getLatLng();
        p.lon = round6(ll.lng);
        p.lat = round6(ll.lat);
        p.crs = st.datum;
        renderPlanned();
        evaluate();
      });
      marker.on("click", function () {
        L.popup({ offset: [0, -6] }).setLatLng(marker.getLatLng()).setContent(plannedPopup(p, i + 1)).openOn(map);
      });
      marker.wbKey = p.key;
      plannedLayer.addLayer(marker);
    });
  }

  function drawIsochrones() {
    isoLayer.clearLayers();
    var iso = st.result && st.result.isochrones;
    if (!iso) return;
    iso.features.forEach(function (f) {
      isoLayer.addLayer(L.geoJSON(geometryTo(f.geometry, st.datum), {
        interactive: false,
        style: { color: "#e65100", weight: 1, opacity: 0.8, fillColor: "#ffcc80", fillOpacity: 0.35 }
      }));
    });
  }

  /* The gap zones shown: after the scenario when there is one, else as they are now. The
   * colour classes stay those of the zones now, so a change reads as a change. */
  function shownGaps() {
    return st.result && st.result.gaps ? st.result.gaps : st.gapsNow;
  }

  function gapColor(v) {
    var g = st.gapsNow || {};
    var breaks = g.breaks || [], colors = g.colors || ["#fd8d3c"];
    var i = 0;
    while (i < breaks.length && v >= breaks[i]) i++;
    return colors[Math.min(i, colors.length - 1)];
  }

  function drawGaps() {
    gapsLayer.clearLayers();
    var g = shownGaps();
    st.gapsDrawn = 0;
    if (!g) return;
    g.features.forEach(function (f) {
      if (!f.geometry) return;
      var p = f.properties;
      // Interactive only for the tooltip: a click goes on to the map and adds a facility.
      var layer = L.geoJSON(geometryTo(f.geometry, st.datum), {
        pane: "wbGaps", bubblingMouseEvents: true,
        style: { color: "#a63603", weight: 0.8, opacity: 0.9, fillColor: gapColor(p.population || 0), fillOpacity: 0.55 }
      });
      var tip = el("div");
      tip.appendChild(el("div", "缺口区 #" + p.gap_id + " / gap zone"));
      tip.appendChild(el("div", "居民 / residents: " + people(p.population) + " 人"));
      tip.appendChild(el("div", "3岁以下 / under 3: " + people(p.population_under3) + " 人"));
      if (p.unit_names) tip.appendChild(el("div", "街道: " + p.unit_names.split(",").join("、")));
      layer.bindTooltip(tip, { sticky: true });
      layer.wbGap = p.gap_id;
      gapsLayer.addLayer(layer);
      st.gapsDrawn++;
    });
  }

  function renderGapLegend() {
    var box = $("gap-legend");
    box.replaceChildren();
    var now = st.gapsNow;
    if (!now) return;
    if (now.skipped) { box.appendChild(el("div", now.skipped, "muted")); return; }
    var edges = [0].concat(now.breaks || []);
    var title = el("div");
    title.appendChild(bilingual("缺口区：每片居民（人）", "gap zones: residents per zone"));
    box.appendChild(title);
    (now.colors || []).slice(0, edges.length).forEach(function (c, i) {
      var item = el("span", null, "gap-class");
      var sw = el("span", null, "swatch");
      sw.style.background = c;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(i === edges.length - 1
        ? "≥ " + people(edges[i]) + " 人"
        : people(edges[i]) + "–" + people(edges[i + 1]) + " 人"));
      box.appendChild(item);
    });
    var merge = now.merge_distance_m === null || now.merge_distance_m === undefined ? "—" : now.merge_distance_m;
    box.appendChild(el("div",
      "步行 " + cfg.minutes + " 分钟（" + people(cfg.walkM) + " 米）内无托育机构的居民；相距 ≤ " + merge +
      " 米的圈外人口点合并为一片。", "muted"));
    box.appendChild(el("div",
      "Residents with no facility within a " + cfg.minutes + "-min walk (" + people(cfg.walkM) +
      " m); uncovered population points within " + merge + " m of each other form one zone.", "muted en"));
    var g = shownGaps();
    if (g && g.shown < g.zones) {
      box.appendChild(el("div", "显示居民最多的 " + g.shown + " 片（共 " + g.zones + " 片，上限 " + g.max_zones +
        "）/ the " + g.shown + " zones with most residents drawn (of " + g.zones + ", cap " + g.max_zones + ")", "muted"));
    }
  }

  function renderGapTotals() {
    var box = $("gaps-summary");
    box.replaceChildren();
    var g = shownGaps();
    if (!g) return;
    var div = el("div");
    div.appendChild(el("span", "15分钟圈外居民 / residents outside the " + cfg.minutes + "-min circle: "));
    if (st.result && st.result.gaps) {
      div.appendChild(el("span", people(g.residents_outside_before) + " → " + people(g.residents_outside) + " 人"));
      div.appendChild(document.createTextNode("（"));
      var s = el("span", signed(g.residents_outside_change), cls(-g.residents_outside_change));
      s.id = "gaps-outside";
      s.dataset.value = g.residents_outside_change === null ? "" : String(g.residents_outside_change);
      div.appendChild(s);
      div.appendChild(document.createTextNode("）"));
      box.appendChild(div);
      box.appendChild(el("div", "缺口区 / gap zones: " + g.zones_before + " → " + g.zones + " 片", "muted"));
    } else {
      var now = el("span", people(g.residents_outside) + " 人");
      now.id = "gaps-outside-now";
      now.dataset.value = String(g.residents_outside);
      div.appendChild(now);
      box.appendChild(div);
      box.appendChild(el("div", "缺口区 / gap zones: " + g.zones + " 片", "muted"));
    }
  }

  function drawAll() {
    drawUnits();
    drawGaps();
    drawIsochrones();
    drawFacilities();
    drawPlanned();
    renderPlanned();
  }

  /* ---- the scenario ---------------------------------------------------------------------- */

  function addPlanned(latlng) {
    if (st.planned.length >= cfg.maxAdditions) {
      say("一个方案最多新增 " + cfg.maxAdditions + " 处 / at most " + cfg.maxAdditions + " additions", "error");
      return;
    }
    var slots = parseInt($("slots").value, 10);
    var p = {
      key: st.nextKey++,
      kind: $("kind").value,
      puhui: $("puhui").checked,
      slots: isFinite(slots) && slots >= 0 ? slots : null,
      lon: round6(latlng.lng),
      lat: round6(latlng.lat),
      crs: st.datum
    };
    p.name = "规划新增托育点 " + p.key;
    st.planned.push(p);
    drawPlanned();
    renderPlanned();
    evaluate();
  }

  function removePlanned(key) {
    st.planned = st.planned.filter(function (p) { return p.key !== key; });
    map.closePopup();
    drawPlanned();
    renderPlanned();
    evaluate();
  }

  function renderPlanned() {
    var tbody = $("planned").querySelector("tbody");
    tbody.replaceChildren();
    st.planned.forEach(function (p, i) {
      var tr = document.createElement("tr");
      tr.dataset.key = p.key;
      cell(tr, i + 1);
      cell(tr, p.kind, "text");
      cell(tr, p.puhui ? "是" : "否");
      cell(tr, p.slots === null ? "—" : p.slots);
      cell(tr, p.lon.toFixed(6) + ", " + p.lat.toFixed(6) + " (" + p.crs.toUpperCase() + ")", "text");
      var td = cell(tr, "");
      var b = el("button", "移除 Remove");
      b.type = "button";
      b.addEventListener("click", function () { removePlanned(p.key); });
      td.appendChild(b);
      tbody.appendChild(tr);
    });
    var box = $("removed");
    box.replaceChildren();
    if (st.removed.size) {
      box.appendChild(el("span", "方案中关闭的现有机构 / left out: "));
      st.removed.forEach(function (id) {
        var f = st.facilities.find(function (x) { return x.properties.id === id; });
        box.appendChild(el("span", (f && f.properties.name) || id, "pill"));
        box.appendChild(document.createTextNode(" "));
      });
    }
  }

  function scenarioBody() {
    return {
      add: st.planned.map(function (p) {
        var a = { name: p.name, kind: p.kind, puhui: p.puhui, lon: p.lon, lat: p.lat, crs: p.crs };
        if (p.slots !== null) a.slots = p.slots;
        return a;
      }),
      remove: Array.from(st.removed)
    };
  }

  async function evaluate() {
    var my = ++st.seq;
    if (!st.planned.length && !st.removed.size) {
      st.result = null;
      st.busy = false;
      renderResult();
      drawUnits();
      drawGaps();
      drawIsochrones();
      say("尚无改动 / no change");
      return;
    }
    st.busy = true;
    say("计算中… / computing…", "busy");
    try {
      var data = await call("POST", "/scenarios?gaps=true&isochrone_minutes=" + cfg.minutes, scenarioBody(), false);
      if (my !== st.seq) return; // a newer change is on its way
      st.result = data;
      st.error = null;
      st.evaluations++;
      renderResult();
      drawUnits();
      drawGaps();
      drawIsochrones();
      var iso = data.isochrones;
      say("已更新：新增 " + data.added.length + " 处，关闭 " + data.removed.length + " 处" +
          (iso && iso.skipped ? "（" + iso.skipped + " 处未画等时圈）" : "") +
          " / updated: " + data.added.length + " added, " + data.removed.length + " left out");
    } catch (e) {
      if (my !== st.seq) return;
      st.error = e.message;
      var which = e.field && /^add\.(\d+)/.exec(e.field);
      say("计算失败 / failed" + (which ? "（规划机构 #" + (Number(which[1]) + 1) + "）" : "") + "：" + e.message, "error");
    } finally {
      if (my === st.seq) st.busy = false;
    }
  }

  function renderResult() {
    var r = st.result;
    var tbody = $("changes").querySelector("tbody");
    tbody.replaceChildren();
    var box = $("district");
    box.replaceChildren();
    $("under3-note").textContent = r && r.under3_method ? r.under3_method : "";
    renderGapTotals();
    renderGapLegend();
    if (!r) {
      box.appendChild(bilingual("尚无改动", "no change yet"));
      return;
    }
    var d = r.district;
    if (d) {
      var lines = [
        ["15分钟覆盖居民 / residents within " + cfg.minutes + " min: ", people(d.covered_before) + " → " + people(d.covered_after) + " 人", signed(d.covered_change), d.covered_change, "district-covered"],
        ["覆盖3岁以下婴幼儿 / under-3 covered: ", people(d.under3_covered_before) + " → " + people(d.under3_covered_after) + " 人", signed(d.under3_covered_change), d.under3_covered_change, "district-under3"],
        ["覆盖率 / coverage: ", pct(d.coverage_pct_before) + "% → " + pct(d.coverage_pct_after) + "%", signed(d.coverage_pp, 2) + " 个百分点 pp", d.coverage_pp, "district-pp"]
      ];
      lines.forEach(function (l) {
        var div = el("div");
        div.appendChild(el("span", l[0]));
        div.appendChild(el("span", l[1]));
        div.appendChild(document.createTextNode("（"));
        var s = el("span", l[2], cls(l[3]));
        s.id = l[4];
        s.dataset.value = l[3] === null ? "" : String(l[3]);
        div.appendChild(s);
        div.appendChild(document.createTextNode("）"));
        box.appendChild(div);
      });
    }
    var rows = r.changes.slice();
    if (d) rows.push(d);
    rows.forEach(function (c, i) {
      var tr = document.createElement("tr");
      var isDistrict = d && i === rows.length - 1;
      tr.dataset.code = isDistrict ? "district" : c.code;
      var moved = (c.covered_change && Math.abs(c.covered_change) >= 0.05) ||
        c.facilities_after !== c.facilities_before;
      tr.className = isDistrict ? "district" : moved ? "changed" : "";
      cell(tr, c.name || c.code, "text");
      cell(tr, people(c.covered_after), "covered-after", c.covered_after);
      cell(tr, signed(c.covered_change), "covered-change " + cls(c.covered_change), c.covered_change);
      cell(tr, people(c.under3_covered_after), "under3-after", c.under3_covered_after);
      cell(tr, signed(c.under3_covered_change), "under3-change " + cls(c.under3_covered_change), c.under3_covered_change);
      cell(tr, pct(c.coverage_pct_after), "coverage-after", c.coverage_pct_after);
      cell(tr, signed(c.coverage_pp, 2), "coverage-pp " + cls(c.coverage_pp), c.coverage_pp);
      var fb = c.puhui_facilities_before, fa = c.puhui_facilities_after;
      cell(tr, fb === null || fa === null ? "—" : fb === fa ? String(fa) : fb + " → " + fa, "puhui-facilities");
      tbody.appendChild(tr);
    });
  }

  /* ---- saved scenarios ----------------------------------------------------------------- */

  function when(iso) {
    var d = new Date(iso);
    var p = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }

  function exportLink(td, s, format, text) {
    var a = el("a", text);
    a.href = base + "/saved-scenarios/" + s.id + "/export?format=" + format;
    a.setAttribute("download", cfg.area + "-scenario-" + s.id + "." + format);
    a.className = "export export-" + format;
    td.appendChild(a);
    td.appendChild(document.createTextNode(" "));
  }

  async function refreshSaved() {
    st.saved = await call("GET", "/saved-scenarios", null, false);
    var tbody = $("saved").querySelector("tbody");
    tbody.replaceChildren();
    var selects = [$("cmp-a"), $("cmp-b")];
    selects.forEach(function (s) { s.replaceChildren(); });
    st.saved.forEach(function (s, i) {
      var tr = document.createElement("tr");
      tr.dataset.id = s.id;
      cell(tr, s.name, "text saved-name");
      cell(tr, s.author + " · " + when(s.created_at), "text");
      cell(tr, "+" + s.additions + " / −" + s.removals);
      var d = s.district || {};
      cell(tr, signed(d.covered_change), cls(d.covered_change), d.covered_change);
      cell(tr, signed(d.coverage_pp, 2), cls(d.coverage_pp), d.coverage_pp);
      var td = cell(tr, "", "text");
      var load = el("button", "载入 Load");
      load.type = "button";
      load.className = "load";
      load.addEventListener("click", function () { loadSaved(s.id); });
      td.appendChild(load);
      var del = el("button", "删除 Delete");
      del.type = "button";
      del.className = "delete";
      del.addEventListener("click", function () { deleteSaved(s); });
      td.appendChild(del);
      td.appendChild(el("br"));
      exportLink(td, s, "csv", "CSV");
      exportLink(td, s, "xlsx", "XLSX");
      exportLink(td, s, "geojson", "GeoJSON");
      exportLink(td, s, "html", "HTML（只读 read-only）");
      tbody.appendChild(tr);
      selects.forEach(function (sel, k) {
        var o = el("option", "#" + s.id + " " + s.name);
        o.value = s.id;
        if (i === k) o.selected = true;
        sel.appendChild(o);
      });
    });
    if (!st.saved.length) {
      var tr = document.createElement("tr");
      var td = cell(tr, "", "text");
      td.colSpan = 6;
      td.appendChild(bilingual("尚无保存的方案", "nothing saved yet"));
      tbody.appendChild(tr);
    }
  }

  async function loadSaved(id) {
    try {
      var s = await call("GET", "/saved-scenarios/" + id, null, false);
      st.planned = s.add.map(function (a) {
        var key = st.nextKey++;
        return {
          key: key, name: a.name || "规划新增托育点 " + key, kind: a.kind || cfg.kinds[0].value,
          puhui: a.puhui === true, slots: a.slots === undefined ? null : a.slots,
          lon: a.lon, lat: a.lat, crs: a.crs || "wgs84"
        };
      });
      st.removed = new Set(s.remove);
      $("name").value = s.name;
      $("note").value = s.note || "";
      st.loaded = s.id;
      drawAll();
      say("已载入方案 / loaded: " + s.name);
      await evaluate();
    } catch (e) {
      say("载入失败 / could not load: " + e.message, "error");
    }
  }

  async function saveScenario() {
    var name = $("name").value.trim();
    if (!name) { say("请填写方案名称 / give the scenario a name", "error"); return; }
    if (!$("token").value.trim()) { say("保存需要令牌 / saving needs a token", "error"); return; }
    var body = scenarioBody();
    body.name = name;
    var note = $("note").value.trim();
    if (note) body.note = note;
    say("保存中… / saving…", "busy");
    try {
      var s = await call("POST", "/saved-scenarios", body, true);
      st.lastSaved = s;
      await refreshSaved();
      say("已保存 / saved: " + s.name + " (#" + s.id + ")");
    } catch (e) {
      say("保存失败 / not saved: " + e.message, "error");
    }
  }

  async function deleteSaved(s) {
    if (!$("token").value.trim()) { say("删除需要令牌 / deleting needs a token", "error"); return; }
    if (!window.confirm("删除方案 / delete “" + s.name + "”?")) return;
    try {
      await call("DELETE", "/saved-scenarios/" + s.id, null, true);
      await refreshSaved();
      say("已删除 / deleted: " + s.name);
    } catch (e) {
      say("删除失败 / not deleted: " + e.message, "error");
    }
  }

  async function compare() {
    var a = $("cmp-a").value, b = $("cmp-b").value;
    if (!a || !b) { say("请先保存两个方案 / save two scenarios first", "error"); return; }
    try {
      var c = await call("GET", "/saved-scenarios/compare?a=" + a + "&b=" + b, null, false);
      st.comparison = c;
      var thead = $("comparison").querySelector("thead");
      thead.replaceChildren();
      var h1 = document.createElement("tr");
      var th = el("th", "街道", "text"); th.rowSpan = 2; h1.appendChild(th);
      [c.a, c.b].forEach(function (s, k) {
        var t = el("th", (k ? "B" : "A") + "：" + s.name); t.colSpan = 3; h1.appendChild(t);
      });
      thead.appendChild(h1);
      var h2 = document.createElement("tr");
      for (var k = 0; k < 2; k++) {
        h2.appendChild(el("th", "居民 Δ"));
        h2.appendChild(el("th", "3岁以下 Δ"));
        h2.appendChild(el("th", "百分点 pp"));
      }
      thead.appendChild(h2);
      var tbody = $("comparison").querySelector("tbody");
      tbody.replaceChildren();
      c.units.concat([c.district]).forEach(function (u, i, all) {
        var tr = document.createElement("tr");
        if (i === all.length - 1) tr.className = "district";
        tr.dataset.code = u.code || "district";
        cell(tr, u.name || u.code, "text");
        [u.a, u.b].forEach(function (x) {
          x = x || {};
          cell(tr, signed(x.covered_change), cls(x.covered_change), x.covered_change);
          cell(tr, signed(x.under3_covered_change), cls(x.under3_covered_change), x.under3_covered_change);
          cell(tr, signed(x.coverage_pp, 2), cls(x.coverage_pp), x.coverage_pp);
        });
        tbody.appendChild(tr);
      });
      $("compare-note").textContent = c.same_base
        ? "两个方案基于同一登记库状态计算 / both computed on the same registry state"
        : "两个方案保存时登记库状态不同，现状数字可能不同 / saved at different registry states: their 'now' figures may differ";
    } catch (e) {
      say("比较失败 / could not compare: " + e.message, "error");
    }
  }

  /* ---- start ---------------------------------------------------------------------------------- */

  cfg.kinds.forEach(function (k) {
    var o = el("option", k.value + " / " + k.en);
    o.value = k.value;
    if (k.value === "社区托育点") o.selected = true;
    $("kind").appendChild(o);
  });
  $("iso-legend").textContent = cfg.minutes + "分钟步行等时圈 / " + cfg.minutes + "-min walk (" + cfg.walkM + " m)";
  $("save").addEventListener("click", saveScenario);
  $("compare").addEventListener("click", compare);
  $("clear").addEventListener("click", function () {
    st.planned = [];
    st.removed = new Set();
    drawAll();
    evaluate();
  });
  showDatum();

  (async function start() {
    try {
      var results = await Promise.all([
        call("GET", "/facilities", null, false),
        call("GET", "/workbench/units", null, false),
        // The page works without the gap layer (an area without one answers an error).
        call("GET", "/workbench/gaps", null, false).catch(function () { return null; })
      ]);
      st.facilities = results[0].features;
      st.units = results[1];
      st.gapsNow = results[2];
      drawAll();
      renderResult();
      await refreshSaved();
      say("现有机构 " + st.facilities.length + " 家，街道 " + st.units.features.length + " 个 / " +
          st.facilities.length + " facilities, " + st.units.features.length + " 街道");
    } catch (e) {
      say("读取失败 / could not load: " + e.message, "error");
    }
    st.ready = true;
  })();
})();
