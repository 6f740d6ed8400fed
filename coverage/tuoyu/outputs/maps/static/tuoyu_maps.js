/* tuoyu-coverage maps: the browser side of coverage/maps (MIT licence).
 *
 * Overlays arrive in WGS84 (OpenStreetMap, 天地图 tiles). On the 高德/Amap basemap they
 * are drawn in GCJ-02: from a GCJ-02 copy when Python embedded one (small layers), else
 * converted here once, with the published forward transform (the same formula as
 * tuoyu.crs.china.wgs84_to_gcj02, rounded to 6 decimals like the embedded copies).
 * When the user switches the basemap, the overlays are redrawn in the new datum, so
 * they stay on their streets.
 *
 * Facility isochrones are not in the page's configuration: they are read when a
 * facility is clicked, from the service (cfg.facilities.isoSource.url), from chunk
 * files beside a saved page (<page>.isochrones/<k>.js, loaded as scripts so that a page
 * opened from disk can read them; each calls tuoyu.isoChunk) or from per-chunk JSON
 * elements inside the page (id tuoyu-chunk-<map>-<k>); each
 * chunk is parsed on its own, on first use.
 *
 * Big thematic layers (a gap map's zones and hexagons; spec.chunked) are read the same
 * way, chunk by chunk (<page>.layers/<key>-<k>.js calling tuoyu.dataChunk, or elements
 * tuoyu-layer-<map>-<key>-<k>), when the layer is switched on and a chunk's box comes on
 * screen. Their geometry is compact (integer steps of 10^-5 degrees, decodeGeometry),
 * WGS84 only, and drawn on one canvas in a pane below the outlines.
 *
 * The "walk from here" lookup of a saved facility map travels the same way
 * (<page>.layers/walk-<k>.js, or elements tuoyu-layer-<map>-walk-<k>): spatial chunks of
 * network nodes, read when a point is clicked or typed — the chunks whose box comes
 * within maxSnapM of it (lookupWalk).
 *
 * Entry point: tuoyu.setup(map, config) with the JSON config written by
 * coverage/maps/common.py. State of each map: map.tuoyu (also tuoyu.last), which the
 * browser tests read.
 */
(function () {
  "use strict";
  var T = (window.tuoyu = window.tuoyu || {});
  T.maps = T.maps || [];

  function layerByName(name) {
    var layer = name ? window[name] : null;
    if (!layer) {
      throw new Error("tuoyu: layer " + name + " not found");
    }
    return layer;
  }

  function esc(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  function s(st, key) {
    var strings = st.cfg.strings || {};
    return strings[key] !== undefined ? strings[key] : key;
  }

  /* ---- WGS84 → GCJ-02 (tuoyu.crs.china.wgs84_to_gcj02) --------------------------- */

  var GCJ_A = 6378245.0;
  var GCJ_EE = 0.00669342162296594323;

  function outsideChina(lon, lat) {
    return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271;
  }

  function round6(v) {
    return Math.round(v * 1e6) / 1e6;
  }

  // [lon, lat] in WGS84 → [lon, lat] in GCJ-02, rounded to 6 decimals (≈ 0.1 m).
  function toGcj(lon, lat) {
    var g = gcjExact(lon, lat);
    return [round6(g[0]), round6(g[1])];
  }

  // [lon, lat] in GCJ-02 → WGS84: the forward transform inverted by fixed-point
  // iteration, as tuoyu.crs.china does (the offset changes by far less than a metre
  // over its own size, so a few steps reach 1e-9°).
  function fromGcj(lon, lat) {
    var guess = [lon, lat];
    for (var it = 0; it < 30; it++) {
      var f = gcjExact(guess[0], guess[1]);
      var eLon = f[0] - lon;
      var eLat = f[1] - lat;
      guess = [guess[0] - eLon, guess[1] - eLat];
      if (Math.abs(eLon) < 1e-9 && Math.abs(eLat) < 1e-9) {
        break;
      }
    }
    return guess;
  }

  function gcjExact(lon, lat) {
    if (outsideChina(lon, lat)) {
      return [lon, lat];
    }
    var pi = Math.PI;
    var x = lon - 105.0;
    var y = lat - 35.0;
    var sqrtAbsX = Math.sqrt(Math.abs(x));
    var common = ((20.0 * Math.sin(6.0 * x * pi) + 20.0 * Math.sin(2.0 * x * pi)) * 2.0) / 3.0;
    var dLat =
      -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrtAbsX + common +
      ((20.0 * Math.sin(y * pi) + 40.0 * Math.sin((y / 3.0) * pi)) * 2.0) / 3.0 +
      ((160.0 * Math.sin((y / 12.0) * pi) + 320.0 * Math.sin((y * pi) / 30.0)) * 2.0) / 3.0;
    var dLon =
      300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrtAbsX + common +
      ((20.0 * Math.sin(x * pi) + 40.0 * Math.sin((x / 3.0) * pi)) * 2.0) / 3.0 +
      ((150.0 * Math.sin((x / 12.0) * pi) + 300.0 * Math.sin((x / 30.0) * pi)) * 2.0) / 3.0;
    var radLat = (lat / 180.0) * pi;
    var magic = 1.0 - GCJ_EE * Math.sin(radLat) * Math.sin(radLat);
    var sqrtMagic = Math.sqrt(magic);
    dLat = (dLat * 180.0) / (((GCJ_A * (1.0 - GCJ_EE)) / (magic * sqrtMagic)) * pi);
    dLon = (dLon * 180.0) / ((GCJ_A / sqrtMagic) * Math.cos(radLat) * pi);
    return [lon + dLon, lat + dLat];
  }

  // Leaflet [lat, lon] pairs → the same in GCJ-02.
  function latLngsToGcj(pairs) {
    return pairs.map(function (p) {
      var g = toGcj(p[1], p[0]);
      return [g[1], g[0]];
    });
  }

  function coordsToGcj(coords) {
    if (typeof coords[0] === "number") {
      return toGcj(coords[0], coords[1]);
    }
    return coords.map(coordsToGcj);
  }

  // A GeoJSON geometry in GCJ-02 (a new object; the input is left alone).
  function geometryToGcj(geom) {
    if (!geom) {
      return geom;
    }
    if (geom.type === "GeometryCollection") {
      return { type: geom.type, geometries: geom.geometries.map(geometryToGcj) };
    }
    return { type: geom.type, coordinates: coordsToGcj(geom.coordinates) };
  }

  // The positions / geometries of a spec in a datum: the embedded copy when there is
  // one, else converted once from WGS84 and kept on the spec.
  function inDatum(spec, datum, convert) {
    if (datum !== "gcj02") {
      return spec.wgs84;
    }
    if (!spec.gcj02) {
      spec.gcj02 = spec.wgs84.map(function (v) {
        return v ? convert(v) : v;
      });
    }
    return spec.gcj02;
  }

  function pointsIn(spec, datum) {
    return inDatum(spec, datum, function (p) {
      return latLngsToGcj([p])[0];
    });
  }

  function geometriesIn(spec, datum) {
    return inDatum(spec, datum, geometryToGcj);
  }

  T.toGcj = toGcj;
  T.fromGcj = fromGcj;

  /* ---- generic controls (title, legend, summary panel) -------------------------- */

  function htmlControl(st, spec) {
    var Ctl = L.Control.extend({
      onAdd: function () {
        var div = L.DomUtil.create("div", "tuoyu-panel " + (spec.cls || ""));
        div.innerHTML = spec.html;
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        return div;
      },
    });
    var ctl = new Ctl({ position: spec.position || "topright" });
    ctl.addTo(st.map);
    return ctl;
  }

  /* ---- GeoJSON overlays in two datums --------------------------------------------- */

  function featureCollection(spec, datum) {
    var geoms = geometriesIn(spec, datum);
    var features = [];
    for (var i = 0; i < geoms.length; i++) {
      if (geoms[i]) {
        features.push({ type: "Feature", properties: spec.props[i], geometry: geoms[i] });
      }
    }
    return { type: "FeatureCollection", features: features };
  }

  function styleOf(feature) {
    return (feature.properties && feature.properties._s) || {};
  }

  // Outlines that take no clicks (街道 boundaries over a gap layer): a pane above the
  // overlays that lets the pointer through to the layer under it.
  function contextPane(st) {
    if (!st.map.getPane("tuoyuContext")) {
      var pane = st.map.createPane("tuoyuContext");
      pane.style.zIndex = 450;
      pane.style.pointerEvents = "none";
    }
    return "tuoyuContext";
  }

  function addGeoJson(st, spec) {
    if (spec.chunked) {
      addChunkedLayer(st, spec);
      return;
    }
    var container = layerByName(spec.container);
    var interactive = spec.interactive !== false;
    var layer = L.geoJSON(null, {
      pane: interactive ? "overlayPane" : contextPane(st),
      style: styleOf,
      interactive: interactive,
      pointToLayer: function (feature, latlng) {
        var style = styleOf(feature);
        return L.circleMarker(latlng, L.extend({ radius: 4, interactive: interactive }, style));
      },
      onEachFeature: function (feature, lyr) {
        var p = feature.properties || {};
        if (p._t && interactive) {
          lyr.bindTooltip(p._t, { sticky: true });
        }
        if (p._p && interactive) {
          lyr.bindPopup(p._p, { maxWidth: 360 });
        }
      },
    });
    layer.addTo(container);
    var entry = {
      key: spec.key,
      spec: spec,
      layer: layer,
      redraw: function (datum) {
        layer.clearLayers();
        layer.addData(featureCollection(spec, datum));
      },
    };
    entry.redraw(st.datum);
    st.layers[spec.key] = entry;
    st.overlays.push(entry);
  }

  /* ---- chunked layers: compact data read when switched on and on screen -------- */

  // Compact geometry (common.py encode_geometries) → GeoJSON in WGS84 degrees. Every
  // number is a step: a vertex from the one before it in its ring, a ring's first vertex
  // from the first vertex of the geometry's previous ring (the first ring's from 0, 0).
  function decodeGeometry(kind, enc, scale) {
    if (!enc) {
      return null;
    }
    if (kind === "point") {
      return { type: "Point", coordinates: [enc[0] / scale, enc[1] / scale] };
    }
    var x0 = 0; // the previous ring's first vertex, in units of 1 / scale
    var y0 = 0;
    var polygons = enc.map(function (rings) {
      return rings.map(function (flat) {
        var ring = [];
        if (flat.length < 2) {
          return ring;
        }
        x0 += flat[0];
        y0 += flat[1];
        var x = x0;
        var y = y0;
        ring.push([x / scale, y / scale]);
        for (var j = 2; j + 1 < flat.length; j += 2) {
          x += flat[j];
          y += flat[j + 1];
          ring.push([x / scale, y / scale]);
        }
        ring.push([ring[0][0], ring[0][1]]);
        return ring;
      });
    });
    if (polygons.length === 1) {
      return { type: "Polygon", coordinates: polygons[0] };
    }
    return { type: "MultiPolygon", coordinates: polygons };
  }
  T.decodeGeometry = decodeGeometry;

  function fmtNumber(st, v, digits) {
    if (v === null || v === undefined || v === "" || !isFinite(Number(v))) {
      return esc(s(st, "unknown"));
    }
    return Number(v).toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }

  // The tooltip table of one feature, as common.py table_html writes it.
  function tipHtml(st, spec, values) {
    var rows = [];
    (spec.columns || []).forEach(function (col, j) {
      var v = values ? values[j] : null;
      if (col.texts && v !== null && v !== undefined) {
        v = col.texts[v];
      }
      var empty = v === null || v === undefined || v === "";
      if (col.skipEmpty && empty) {
        return;
      }
      var cell =
        col.digits !== undefined && col.digits !== null
          ? fmtNumber(st, v, col.digits)
          : empty ? esc(s(st, "unknown")) : esc(v);
      rows.push("<tr><th>" + esc(col.label) + "</th><td>" + cell + "</td></tr>");
    });
    return '<div class="tuoyu-tip"><table>' + rows.join("") + "</table></div>";
  }

  // One canvas for the big layers of a map, in a pane under the vector outlines.
  function thematicRenderer(st) {
    if (!st.thematicRenderer) {
      if (!st.map.getPane("tuoyuThematic")) {
        st.map.createPane("tuoyuThematic").style.zIndex = 350;
      }
      st.thematicRenderer = L.canvas({ pane: "tuoyuThematic", padding: 0.5 });
    }
    return st.thematicRenderer;
  }

  // The view (padded by a quarter) as a WGS84 box [west, south, east, north].
  function viewBoxWgs84(st) {
    var b = st.map.getBounds().pad(0.25);
    var sw = b.getSouthWest();
    var ne = b.getNorthEast();
    if (st.datum === "gcj02") {
      var a = fromGcj(sw.lng, sw.lat);
      var c = fromGcj(ne.lng, ne.lat);
      return [a[0], a[1], c[0], c[1]];
    }
    return [sw.lng, sw.lat, ne.lng, ne.lat];
  }

  function addChunkedLayer(st, spec) {
    var container = layerByName(spec.container);
    var ck = spec.chunked;
    var interactive = spec.interactive !== false;
    var renderer = thematicRenderer(st);
    var styleOfClass = function (feature) {
      return spec.styles[feature.properties.c] || {};
    };
    var layer = L.geoJSON(null, {
      pane: "tuoyuThematic",
      renderer: renderer,
      interactive: interactive,
      style: styleOfClass,
      pointToLayer: function (feature, latlng) {
        return L.circleMarker(
          latlng,
          L.extend(
            { radius: 4, renderer: renderer, pane: "tuoyuThematic", interactive: interactive },
            styleOfClass(feature)
          )
        );
      },
    });
    if (interactive && spec.columns && spec.columns.length) {
      layer.bindTooltip(
        function (lyr) {
          return tipHtml(st, spec, lyr.feature && lyr.feature.properties.v);
        },
        { sticky: true }
      );
    }
    layer.addTo(container);
    var idPrefix = st.layerChunkId + "-" + spec.key;
    var entry = {
      key: spec.key,
      spec: spec,
      layer: layer,
      chunks: {}, // k → features in WGS84
      gcj: {}, // k → the same in GCJ-02, converted on first use
      loading: {},
      drawn: 0,
      errors: [],
    };
    function draw(k) {
      var features = entry.chunks[k];
      if (st.datum === "gcj02") {
        if (!entry.gcj[k]) {
          entry.gcj[k] = features.map(function (f) {
            return { type: "Feature", properties: f.properties, geometry: geometryToGcj(f.geometry) };
          });
        }
        features = entry.gcj[k];
      }
      layer.addData({ type: "FeatureCollection", features: features });
      entry.drawn += features.length;
    }
    function keep(k, data) {
      var features = [];
      for (var j = 0; j < data.i.length; j++) {
        var geometry = decodeGeometry(ck.kind, data.g[j], ck.scale);
        if (geometry) {
          features.push({
            type: "Feature",
            properties: { i: data.i[j], c: data.c[j], v: data.v[j] },
            geometry: geometry,
          });
        }
      }
      entry.chunks[k] = features;
      draw(k);
    }
    // Read the chunks whose box meets the view, once the layer is switched on.
    entry.refresh = function () {
      if (!st.map.hasLayer(container)) {
        return;
      }
      var v = viewBoxWgs84(st);
      ck.bboxes.forEach(function (bb, k) {
        if (entry.chunks[k] || entry.loading[k]) {
          return;
        }
        if (bb[0] > v[2] || bb[2] < v[0] || bb[1] > v[3] || bb[3] < v[1]) {
          return;
        }
        entry.loading[k] = true;
        fetchChunk(idPrefix, spec.key + "-" + k + ".js", k, function (err, data) {
          delete entry.loading[k];
          if (err) {
            entry.errors.push(err.message);
            if (window.console) {
              console.warn("tuoyu: layer " + spec.key + " chunk " + k + ": " + err.message);
            }
            return;
          }
          keep(k, data);
        });
      });
    };
    entry.redraw = function () {
      layer.clearLayers();
      entry.drawn = 0;
      Object.keys(entry.chunks).forEach(draw);
      entry.refresh();
    };
    entry.loadedChunks = function () {
      return Object.keys(entry.chunks)
        .map(Number)
        .sort(function (a, b) {
          return a - b;
        });
    };
    st.map.on("moveend", entry.refresh);
    container.on("add", entry.refresh); // switched on (layer control or code)
    st.layers[spec.key] = entry;
    st.overlays.push(entry);
  }

  /* ---- generic markers (recommended sites, context facilities) ------------------- */

  function divIcon(html, size) {
    var w = size ? size[0] : 24;
    var h = size ? size[1] : 24;
    return L.divIcon({
      html: html,
      className: "tuoyu-divicon",
      iconSize: [w, h],
      iconAnchor: [w / 2, h / 2],
      popupAnchor: [0, -h / 2],
    });
  }

  function addMarkers(st, spec) {
    var container = layerByName(spec.container);
    var markers = [];
    for (var i = 0; i < spec.wgs84.length; i++) {
      var pos = pointsIn(spec, st.datum)[i];
      var marker = L.marker(pos, {
        icon: divIcon(spec.icons[i], spec.iconSize),
        title: spec.titles ? spec.titles[i] : "",
        riseOnHover: true,
      });
      if (spec.popups && spec.popups[i]) {
        marker.bindPopup(spec.popups[i], { maxWidth: 360 });
      }
      marker.tuoyuIndex = i;
      markers.push(marker);
      marker.addTo(container);
    }
    var entry = {
      key: spec.key,
      spec: spec,
      markers: markers,
      redraw: function (datum) {
        var positions = pointsIn(spec, datum);
        markers.forEach(function (m, j) {
          m.setLatLng(positions[j]);
        });
      },
    };
    st.layers[spec.key] = entry;
    st.overlays.push(entry);
  }

  /* ---- the facility layer: markers, filters, isochrones on click ---------------- */

  function facilityIcon(fac, i) {
    var color = fac.colors[fac.kinds[i]] || fac.colors[""] || "#7f7f7f";
    var badge = fac.puhui[i] === 1 ? '<span class="tuoyu-badge">' + esc(fac.puhuiBadge) + "</span>" : "";
    var html =
      '<span class="tuoyu-pin" data-fid="' +
      esc(fac.ids[i]) +
      '" style="background:' +
      color +
      '"></span>' +
      badge;
    return L.divIcon({
      html: html,
      className: "tuoyu-fac",
      iconSize: [18, 18],
      iconAnchor: [9, 9],
      popupAnchor: [0, -9],
    });
  }

  function isoStyle(fac, minutes) {
    var color = fac.isoColors[String(minutes)] || "#3182bd";
    return { color: color, weight: 1.5, fillColor: color, fillOpacity: 0.22, interactive: false };
  }

  // Chunk k of data the page reads on demand: a JSON element inside the page
  // (<idPrefix>-<k>), else a script in the folder named by <idPrefix>-dir that calls
  // tuoyu.isoChunk / tuoyu.dataChunk(idPrefix, k, data).
  var pendingChunks = {};

  T.isoChunk = function (chunkId, k, data) {
    var waiting = pendingChunks[chunkId + "/" + k];
    if (waiting) {
      delete pendingChunks[chunkId + "/" + k];
      waiting.forEach(function (done) {
        done(null, data);
      });
    }
  };
  T.dataChunk = T.isoChunk;

  function fetchChunk(idPrefix, fileName, k, done) {
    var inline = document.getElementById(idPrefix + "-" + k);
    if (inline) {
      done(null, JSON.parse(inline.textContent));
      return;
    }
    var dirEl = document.getElementById(idPrefix + "-dir");
    if (!dirEl) {
      done(new Error("the data is not in this page"));
      return;
    }
    var key = idPrefix + "/" + k;
    if (pendingChunks[key]) {
      pendingChunks[key].push(done);
      return;
    }
    pendingChunks[key] = [done];
    var script = document.createElement("script");
    script.src = encodeURIComponent(JSON.parse(dirEl.textContent)) + "/" + encodeURIComponent(fileName);
    script.onerror = function () {
      var waiting = pendingChunks[key] || [];
      delete pendingChunks[key];
      waiting.forEach(function (cb) {
        cb(new Error("cannot read " + script.src));
      });
    };
    document.head.appendChild(script);
  }

  // Chunk k of the isochrones: {"<facility index>": [[minutes, geometry], ...]}.
  function loadChunk(st, k, done) {
    if (st.isoChunks[k]) {
      done(null, st.isoChunks[k]);
      return;
    }
    fetchChunk(st.chunkId, k + ".js", k, function (err, data) {
      if (!err) {
        st.isoChunks[k] = data;
      }
      done(err, data);
    });
  }

  // The isochrones of facility i as [[minutes, WGS84 geometry], ...] (async).
  function isochronesOf(st, i, done) {
    var src = st.cfg.facilities.isoSource;
    if (!src) {
      done(null, []);
      return;
    }
    if (src.mode === "api") {
      var id = st.cfg.facilities.ids[i];
      var calls = src.minutes.map(function (minutes) {
        var url = src.url
          .replace("{id}", encodeURIComponent(String(id)))
          .replace("{minutes}", encodeURIComponent(String(minutes)));
        return fetch(url).then(function (r) {
          if (!r.ok) {
            throw new Error("HTTP " + r.status);
          }
          return r.json().then(function (feature) {
            return [minutes, feature.geometry || null];
          });
        });
      });
      Promise.all(calls).then(
        function (rings) {
          done(null, rings);
        },
        function (err) {
          done(err);
        }
      );
      return;
    }
    loadChunk(st, Math.floor(i / src.chunkSize), function (err, data) {
      if (err) {
        done(err, null);
        return;
      }
      var rings = (data[String(i)] || []).map(function (ring) {
        // compact integer geometry (facility_map.py _isochrone_chunks) → GeoJSON
        return [ring[0], src.scale ? decodeGeometry("polygon", ring[1], src.scale) : ring[1]];
      });
      done(null, rings);
    });
  }

  function drawIsochrones(st, i, rings) {
    var fac = st.cfg.facilities;
    var group = st.isoGroup;
    group.clearLayers();
    st.isoDrawn = 0;
    // largest first, so the 5-minute area is drawn on top
    var sorted = rings.slice().sort(function (a, b) {
      return b[0] - a[0];
    });
    sorted.forEach(function (ring) {
      var geom = st.datum === "gcj02" ? geometryToGcj(ring[1]) : ring[1];
      if (!geom) {
        return;
      }
      var layer = L.geoJSON(geom, { style: isoStyle(fac, ring[0]), interactive: false });
      layer.tuoyuMinutes = ring[0];
      layer.addTo(group);
      st.isoDrawn += 1;
    });
    st.isoLoaded = i;
  }

  function showIsochrones(st, i) {
    st.isoGroup.clearLayers();
    st.isoIndex = i;
    st.isoDrawn = 0;
    st.isoLoaded = null;
    st.isoError = null;
    if (i === null || i === undefined) {
      return;
    }
    isochronesOf(st, i, function (err, rings) {
      if (st.isoIndex !== i) {
        return; // another facility was clicked meanwhile
      }
      if (err) {
        st.isoError = err.message;
        if (window.console) {
          console.warn("tuoyu: isochrones of facility " + i + ": " + err.message);
        }
        return;
      }
      drawIsochrones(st, i, rings);
    });
  }

  function facilityFilterHtml(st) {
    var fac = st.cfg.facilities;
    var parts = ['<div class="tuoyu-filter"><b>' + esc(s(st, "filter")) + "</b>"];
    fac.legend.forEach(function (item) {
      parts.push(
        '<label><input type="checkbox" class="tuoyu-kind" value="' +
          esc(item.kind) +
          '" checked> <span class="tuoyu-swatch" style="background:' +
          item.color +
          '"></span>' +
          esc(item.label) +
          " (" +
          item.count +
          ")</label>"
      );
    });
    parts.push(
      '<label>' +
        esc(s(st, "puhui")) +
        ' <select class="tuoyu-puhui">' +
        '<option value="all">' + esc(s(st, "all")) + "</option>" +
        '<option value="yes">' + esc(s(st, "puhui_only")) + "</option>" +
        '<option value="no">' + esc(s(st, "non_puhui")) + "</option>" +
        "</select></label>"
    );
    if (fac.isoSource) {
      var keys = Object.keys(fac.isoColors).sort(function (a, b) {
        return Number(a) - Number(b);
      });
      parts.push('<div class="tuoyu-iso-legend">' + esc(s(st, "iso_legend")) + "<br>");
      keys.forEach(function (k) {
        parts.push(
          '<span class="tuoyu-swatch" style="background:' + fac.isoColors[k] + '"></span>' +
            esc(k) + " " + esc(s(st, "min")) + " "
        );
      });
      parts.push("</div>");
    }
    parts.push("</div>");
    return parts.join("");
  }

  function facilityVisible(st, i) {
    var fac = st.cfg.facilities;
    if (!st.kindOn[fac.kinds[i]]) {
      return false;
    }
    if (st.puhuiFilter === "yes") {
      return fac.puhui[i] === 1;
    }
    if (st.puhuiFilter === "no") {
      return fac.puhui[i] === 0;
    }
    return true;
  }

  function refreshFacilities(st) {
    var fac = st.cfg.facilities;
    var container = st.facContainer;
    var positions = pointsIn(fac, st.datum);
    container.clearLayers();
    var shown = [];
    st.facMarkers.forEach(function (m, i) {
      m.setLatLng(positions[i]);
      if (facilityVisible(st, i)) {
        shown.push(m);
      }
    });
    if (container.addLayers) {
      container.addLayers(shown); // MarkerClusterGroup: one bulk insert
    } else {
      shown.forEach(function (m) {
        container.addLayer(m);
      });
    }
    st.facShown = shown.length;
  }

  function addFacilities(st) {
    var fac = st.cfg.facilities;
    st.facContainer = layerByName(fac.container);
    st.isoGroup = layerByName(fac.isoContainer);
    st.kindOn = {};
    fac.legend.forEach(function (item) {
      st.kindOn[item.kind] = true;
    });
    st.puhuiFilter = "all";
    st.facMarkers = fac.ids.map(function (id, i) {
      var marker = L.marker(pointsIn(fac, st.datum)[i], {
        icon: facilityIcon(fac, i),
        title: fac.names[i],
        riseOnHover: true,
      });
      marker.tuoyuIndex = i;
      marker.bindPopup(fac.popups[i], { maxWidth: 360 });
      marker.on("click", function () {
        showIsochrones(st, i);
      });
      return marker;
    });
    st.facIndexById = {};
    fac.ids.forEach(function (id, i) {
      st.facIndexById[String(id)] = i;
    });
    refreshFacilities(st);
    var ctl = htmlControl(st, { position: "topright", html: facilityFilterHtml(st), cls: "tuoyu-filter-panel" });
    var root = ctl.getContainer();
    root.querySelectorAll("input.tuoyu-kind").forEach(function (box) {
      box.addEventListener("change", function () {
        st.kindOn[box.value] = box.checked;
        refreshFacilities(st);
      });
    });
    root.querySelector("select.tuoyu-puhui").addEventListener("change", function (e) {
      st.puhuiFilter = e.target.value;
      refreshFacilities(st);
    });
    st.overlays.push({
      key: "facilities",
      redraw: function () {
        refreshFacilities(st);
        showIsochrones(st, st.isoIndex);
      },
    });
  }

  function openFacility(st, i) {
    var marker = st.facMarkers[i];
    var container = st.facContainer;
    var open = function () {
      marker.openPopup();
      showIsochrones(st, i);
    };
    if (container.zoomToShowLayer && container.hasLayer(marker)) {
      container.zoomToShowLayer(marker, open);
    } else {
      st.map.panTo(marker.getLatLng());
      open();
    }
  }

  /* ---- "walk from here" --------------------------------------------------------- */

  // Metres between two lat/lon points on a local equirectangular plane: enough to find
  // the nearest sample node and the short access leg to it (a few hundred metres).
  function localMetres(lat0, lon0, lat1, lon1) {
    var k = Math.PI / 180;
    var x = (lon1 - lon0) * Math.cos(((lat0 + lat1) / 2) * k) * 6371008.8 * k;
    var y = (lat1 - lat0) * 6371008.8 * k;
    return Math.sqrt(x * x + y * y);
  }

  // The lookup (facility_map.py _walk_config) comes in spatial chunks of network nodes:
  // the page holds each chunk's box and first row (positions are integers in units of
  // 1 / walk.scale degrees, WGS84) and reads the chunks that can hold a node within
  // maxSnapM of the point asked (files beside a saved page, or JSON elements inside it).
  // The answer is the one a scan over every written node gives: the nearest node (ties
  // to the lowest row; rows number the nodes in the order written), if within maxSnapM,
  // and its facilities.

  var EARTH_R = 6371008.8;

  // A box [west, south, east, north] in units of 1 / scale degrees holding every point
  // within `metres` of (lat, lon) as localMetres measures (its cosine is taken at the
  // mean latitude, so the box is widened for the latitude farthest from the equator).
  function snapBox(lat, lon, metres, scale) {
    var k = Math.PI / 180;
    var dLat = (metres / (EARTH_R * k)) * 1.001 + 1e-6;
    var c = Math.cos(Math.min(90, Math.abs(lat) + dLat) * k);
    var dLon = c > 1e-6 ? (metres / (EARTH_R * k * c)) * 1.001 + 1e-6 : 360;
    return [
      Math.floor((lon - dLon) * scale), Math.floor((lat - dLat) * scale),
      Math.ceil((lon + dLon) * scale), Math.ceil((lat + dLat) * scale),
    ];
  }

  // Chunk k's integer lists (steps) → positions and facility pairs of its nodes. The
  // nodes some facility reaches come first, one count each (data.n); the rest reach none.
  function decodeWalkChunk(walk, k, data) {
    var box = walk.bboxes[k];
    var n = data.x.length;
    var c = {
      row0: walk.rowStarts[k], // row of the chunk's first node
      lon: new Int32Array(n),
      lat: new Int32Array(n),
      start: new Int32Array(n + 1),
      fac: new Int32Array(data.f.length),
      tenths: data.t,
    };
    var x = box[0];
    var y = box[1];
    for (var j = 0; j < n; j++) {
      x += data.x[j];
      y += data.y[j];
      c.lon[j] = x;
      c.lat[j] = y;
      c.start[j + 1] = c.start[j] + (j < data.n.length ? data.n[j] : 0);
      var f = 0;
      for (var q = c.start[j]; q < c.start[j + 1]; q++) {
        f = q === c.start[j] ? data.f[q] : f + data.f[q];
        c.fac[q] = f;
      }
    }
    return c;
  }

  function loadWalkChunk(st, k, done) {
    if (st.walkChunks[k]) {
      done(null);
      return;
    }
    fetchChunk(st.layerChunkId + "-walk", "walk-" + k + ".js", k, function (err, data) {
      if (!err && !st.walkChunks[k]) {
        st.walkChunks[k] = decodeWalkChunk(st.cfg.walk, k, data);
      }
      done(err);
    });
  }

  // The nearest node to a WGS84 point among the chunks `ks` (all loaded).
  function nearestNode(st, ks, lat, lon) {
    var scale = st.cfg.walk.scale;
    var best = null;
    var bestRow = Infinity;
    var bestM = Infinity;
    ks.forEach(function (k) {
      var c = st.walkChunks[k];
      for (var j = 0; j < c.lon.length; j++) {
        var d = localMetres(lat, lon, c.lat[j] / scale, c.lon[j] / scale);
        if (d < bestM || (d === bestM && c.row0 + j < bestRow)) {
          bestM = d;
          bestRow = c.row0 + j;
          best = [c, j];
        }
      }
    });
    return { node: best, metres: bestM };
  }

  // The answer for a point in `datum` ({rows, legM} or {error}), to done (at once when
  // the chunks needed are in the page or already read).
  function lookupWalk(st, lat, lon, datum, done) {
    var walk = st.cfg.walk;
    if (!walk.nodes) {
      done({ error: s(st, "no_walk_data") });
      return;
    }
    if (datum === "gcj02") {
      var w = fromGcj(lon, lat);
      lon = w[0];
      lat = w[1];
    }
    var box = snapBox(lat, lon, walk.maxSnapM, walk.scale);
    var need = [];
    walk.bboxes.forEach(function (bb, k) {
      if (!(bb[0] > box[2] || bb[2] < box[0] || bb[1] > box[3] || bb[3] < box[1])) {
        need.push(k);
      }
    });
    var left = need.length;
    var failed = null;
    var answer = function () {
      if (failed) {
        done({ error: s(st, "walk_load_failed") + " (" + failed.message + ")" });
        return;
      }
      var near = nearestNode(st, need, lat, lon);
      if (!near.node || near.metres > walk.maxSnapM) {
        done({ error: s(st, "too_far").replace("{m}", Math.round(walk.maxSnapM)) });
        return;
      }
      var c = near.node[0];
      var j = near.node[1];
      var legMin = near.metres / ((walk.speedKmh * 1000) / 60);
      var rows = [];
      for (var q = c.start[j]; q < c.start[j + 1]; q++) {
        var t = c.tenths[q] / 10 + legMin;
        if (t <= walk.minutes + 1e-9) {
          rows.push({ index: c.fac[q], minutes: t });
        }
      }
      rows.sort(function (a, b) {
        return a.minutes - b.minutes || a.index - b.index;
      });
      done({ rows: rows, legM: near.metres, node: c.row0 + j });
    };
    if (!left) {
      answer();
      return;
    }
    need.forEach(function (k) {
      loadWalkChunk(st, k, function (err) {
        failed = failed || err;
        left -= 1;
        if (left === 0) {
          answer();
        }
      });
    });
  }

  function apiRows(st, payload) {
    var items = Array.isArray(payload)
      ? payload
      : payload.facilities || payload.results || payload.nearest || payload.items || [];
    var speedMpm = ((st.cfg.walk.speedKmh || 4) * 1000) / 60;
    return items.map(function (it) {
      var id = it.facility_id !== undefined ? it.facility_id : it.id;
      var minutes =
        it.walk_min !== undefined ? it.walk_min
          : it.minutes !== undefined ? it.minutes
          : it.walk_s !== undefined ? it.walk_s / 60
          : it.walk_m !== undefined ? it.walk_m / speedMpm
          : null;
      var idx = st.facIndexById ? st.facIndexById[String(id)] : undefined;
      return { index: idx, id: id, name: it.name, minutes: minutes };
    });
  }

  function renderWalk(st, result) {
    var out = st.walkOut;
    var fac = st.cfg.facilities;
    if (result.error) {
      out.innerHTML = '<div class="tuoyu-msg">' + esc(result.error) + "</div>";
      st.walkRows = [];
      return;
    }
    st.walkRows = result.rows;
    if (!result.rows.length) {
      out.innerHTML = '<div class="tuoyu-msg">' + esc(s(st, "none_within")) + "</div>";
      return;
    }
    var html = ['<ol class="tuoyu-walk-list">'];
    result.rows.forEach(function (r, k) {
      var name = r.index !== undefined && fac ? fac.names[r.index] : r.name || r.id;
      var badge = r.index !== undefined && fac && fac.puhui[r.index] === 1
        ? ' <span class="tuoyu-badge-inline">' + esc(fac.puhuiBadge) + "</span>" : "";
      var mins = r.minutes === null || r.minutes === undefined ? "?" : r.minutes.toFixed(1);
      html.push(
        '<li data-k="' + k + '"><a href="#">' + esc(name) + "</a>" + badge + " — " +
          esc(mins) + " " + esc(s(st, "min")) + "</li>"
      );
    });
    html.push("</ol>");
    if (result.legM !== undefined) {
      html.push('<div class="tuoyu-note">' + esc(s(st, "walk_note")) + "</div>");
    }
    out.innerHTML = html.join("");
    out.querySelectorAll("li").forEach(function (li) {
      li.querySelector("a").addEventListener("click", function (e) {
        e.preventDefault();
        var row = st.walkRows[Number(li.getAttribute("data-k"))];
        if (row && row.index !== undefined) {
          openFacility(st, row.index);
        }
      });
    });
  }

  function walkFrom(st, lat, lon) {
    var walk = st.cfg.walk;
    var seq = (st.walkSeq = (st.walkSeq || 0) + 1);
    st.walkQuery = { lat: lat, lon: lon, datum: st.datum };
    st.hereGroup.clearLayers();
    L.circleMarker([lat, lon], {
      radius: 7, color: "#000", weight: 2, fillColor: "#ffeb3b", fillOpacity: 1, interactive: false,
    }).addTo(st.hereGroup);
    if (walk.mode === "api" && st.cfg.nearestUrl) {
      st.walkOut.innerHTML = '<div class="tuoyu-msg">…</div>';
      // The service hands the page its URL template (placeholders {lon} {lat} {crs} {minutes}).
      var url = st.cfg.nearestUrl
        .replace("{lon}", lon.toFixed(6))
        .replace("{lat}", lat.toFixed(6))
        .replace("{crs}", encodeURIComponent(st.datum))
        .replace("{minutes}", encodeURIComponent(String(walk.minutes)));
      fetch(url)
        .then(function (r) {
          if (!r.ok) {
            throw new Error("HTTP " + r.status);
          }
          return r.json();
        })
        .then(function (payload) {
          if (seq === st.walkSeq) {
            renderWalk(st, { rows: apiRows(st, payload) });
          }
        })
        .catch(function (err) {
          if (seq === st.walkSeq) {
            renderWalk(st, { error: s(st, "api_failed") + " (" + err.message + ")" });
          }
        });
      return;
    }
    if (walk.mode !== "lookup") {
      renderWalk(st, { error: s(st, "no_walk_data") });
      return;
    }
    st.walkOut.innerHTML = '<div class="tuoyu-msg">…</div>';
    lookupWalk(st, lat, lon, st.datum, function (result) {
      if (seq === st.walkSeq) {
        renderWalk(st, result); // else another point was asked meanwhile
      }
    });
  }

  function parseLonLat(text) {
    var parts = String(text).replace(/，/g, ",").trim().split(/[\s,;]+/);
    if (parts.length !== 2) {
      return null;
    }
    var lon = Number(parts[0]);
    var lat = Number(parts[1]);
    if (!isFinite(lon) || !isFinite(lat) || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
      return null;
    }
    return { lon: lon, lat: lat };
  }

  // BD-09 → GCJ-02 (Baidu's published transform inverted, as tuoyu.crs.china does).
  function bdToGcj(lon, lat) {
    var xPi = (Math.PI * 3000.0) / 180.0;
    var fwd = function (x, y) {
      var z = Math.sqrt(x * x + y * y) + 0.00002 * Math.sin(y * xPi);
      var th = Math.atan2(y, x) + 0.000003 * Math.cos(x * xPi);
      return [z * Math.cos(th) + 0.0065, z * Math.sin(th) + 0.006];
    };
    var g = [lon, lat];
    for (var k = 0; k < 30; k++) {
      var f = fwd(g[0], g[1]);
      var ex = f[0] - lon;
      var ey = f[1] - lat;
      g = [g[0] - ex, g[1] - ey];
      if (Math.abs(ex) < 1e-10 && Math.abs(ey) < 1e-10) {
        break;
      }
    }
    return g;
  }

  // A typed point in `datum` → {lat, lon} in the basemap's system (st.datum).
  function typedToDisplay(st, p, datum) {
    var lon = p.lon;
    var lat = p.lat;
    if (datum === "bd09") {
      var g = bdToGcj(lon, lat);
      lon = g[0];
      lat = g[1];
      datum = "gcj02";
    }
    if (datum === st.datum) {
      return { lon: lon, lat: lat };
    }
    var out = datum === "gcj02" ? fromGcj(lon, lat) : toGcj(lon, lat);
    return { lon: out[0], lat: out[1] };
  }

  function addWalkPanel(st) {
    var walk = st.cfg.walk;
    st.hereGroup = L.layerGroup().addTo(st.map);
    var html =
      '<div class="tuoyu-walk"><b>' + esc(s(st, "walk_here")) + "</b>" +
      '<div class="tuoyu-hint">' + esc(s(st, "walk_hint")) + "</div>" +
      '<form class="tuoyu-walk-form"><input class="tuoyu-lonlat" type="text" placeholder="' +
      esc(s(st, "lonlat_placeholder")) + '"> <select class="tuoyu-typed-datum" title="' +
      esc(s(st, "typed_datum")) + '"><option value="gcj02" selected>GCJ-02 ' +
      esc(s(st, "datum_gcj02")) + '</option><option value="wgs84">WGS84 ' +
      esc(s(st, "datum_wgs84")) + '</option><option value="bd09">BD-09 ' +
      esc(s(st, "datum_bd09")) + '</option></select> <button type="submit">' +
      esc(s(st, "search")) +
      '</button></form><div class="tuoyu-datum"></div><div class="tuoyu-walk-out"></div></div>';
    var ctl = htmlControl(st, { position: "bottomleft", html: html, cls: "tuoyu-walk-panel" });
    var root = ctl.getContainer();
    st.walkOut = root.querySelector(".tuoyu-walk-out");
    st.walkDatumNote = root.querySelector(".tuoyu-datum");
    root.querySelector("form").addEventListener("submit", function (e) {
      e.preventDefault();
      var typed = parseLonLat(root.querySelector("input.tuoyu-lonlat").value);
      if (!typed) {
        renderWalk(st, { error: s(st, "bad_lonlat") });
        return;
      }
      // Typed points are read in the system chosen beside the box (GCJ-02, what Amap and
      // Tencent show, unless changed), whichever basemap is on screen.
      var point = typedToDisplay(st, typed, root.querySelector("select.tuoyu-typed-datum").value);
      st.map.panTo([point.lat, point.lon]);
      walkFrom(st, point.lat, point.lon);
    });
    if (walk.mode !== "none") {
      st.map.on("click", function (e) {
        walkFrom(st, e.latlng.lat, e.latlng.lng);
      });
    }
    updateDatumNote(st);
  }

  function updateDatumNote(st) {
    if (st.walkDatumNote) {
      st.walkDatumNote.textContent = s(st, "datum_note").replace(
        "{datum}", st.datum === "gcj02" ? "GCJ-02" : "WGS84"
      );
    }
  }

  // Move the "here" point to the new datum with the local offset of the nearest
  // embedded reference point (the offset changes by far less than a metre over it).
  function moveQuery(st, newDatum) {
    var q = st.walkQuery;
    if (!q || q.datum === newDatum) {
      return;
    }
    var ref = null;
    var fac = st.cfg.facilities;
    if (fac && fac.ids.length) {
      var best = Infinity;
      var from = pointsIn(fac, q.datum);
      var to = pointsIn(fac, newDatum);
      from.forEach(function (p, i) {
        var d = localMetres(q.lat, q.lon, p[0], p[1]);
        if (d < best) {
          best = d;
          ref = [p, to[i]];
        }
      });
    }
    st.hereGroup.clearLayers();
    if (!ref) {
      st.walkQuery = null;
      return;
    }
    q.lat += ref[1][0] - ref[0][0];
    q.lon += ref[1][1] - ref[0][1];
    q.datum = newDatum;
    L.circleMarker([q.lat, q.lon], {
      radius: 7, color: "#000", weight: 2, fillColor: "#ffeb3b", fillOpacity: 1, interactive: false,
    }).addTo(st.hereGroup);
  }

  /* ---- datum switching ------------------------------------------------------------ */

  function setDatum(st, datum) {
    if (datum === st.datum) {
      return;
    }
    var old = st.datum;
    st.datum = datum;
    st.map.getContainer().setAttribute("data-tuoyu-datum", datum);
    st.overlays.forEach(function (entry) {
      entry.redraw(datum, old);
    });
    moveQuery(st, datum);
    updateDatumNote(st);
  }

  /* ---- entry point ------------------------------------------------------------------ */

  T.setup = function (map, cfg, dataId) {
    var st = {
      map: map,
      cfg: cfg,
      chunkId: String(dataId || "").replace("tuoyu-data-", "tuoyu-chunk-"),
      layerChunkId: String(dataId || "").replace("tuoyu-data-", "tuoyu-layer-"),
      isoChunks: {},
      walkChunks: {}, // k → a decoded chunk of the walk lookup
      datum: cfg.initialDatum || "wgs84",
      overlays: [],
      layers: {},
      isoIndex: null,
      isoDrawn: 0,
    };
    map.tuoyu = st;
    T.maps.push(st);
    T.last = st;
    var el = map.getContainer();
    el.setAttribute("data-tuoyu-datum", st.datum);
    el.setAttribute("data-tuoyu-kind", cfg.kind || "");
    if (cfg.nearestUrl) {
      el.setAttribute("data-nearest-url", cfg.nearestUrl);
    }
    if (map.attributionControl) {
      map.attributionControl.setPrefix(
        '<a href="https://leafletjs.com" title="A JavaScript library for interactive maps">Leaflet</a>'
      );
      (cfg.attributions || []).forEach(function (a) {
        map.attributionControl.addAttribution(a);
      });
    }
    map.on("baselayerchange", function (e) {
      setDatum(st, (cfg.baseDatums || {})[e.name] || "wgs84");
    });
    (cfg.controls || []).forEach(function (spec) {
      htmlControl(st, spec);
    });
    (cfg.geojson || []).forEach(function (spec) {
      addGeoJson(st, spec);
    });
    (cfg.markers || []).forEach(function (spec) {
      addMarkers(st, spec);
    });
    if (cfg.facilities) {
      addFacilities(st);
    }
    if (cfg.walk) {
      addWalkPanel(st);
    }
    if (cfg.bounds) {
      map.fitBounds(cfg.bounds, { padding: [10, 10] });
    }
    st.overlays.forEach(function (entry) {
      if (entry.refresh) {
        entry.refresh(); // chunked layers shown from the start read what is on screen
      }
    });
    st.ready = true;
    return st;
  };

  T.openFacility = function (i, st) {
    openFacility(st || T.last, i);
  };
  T.walkFrom = function (lat, lon, st) {
    walkFrom(st || T.last, lat, lon);
  };
  // The walk lookup's answer for a point given in `datum` (default: the basemap's), as
  // a promise of {rows: [{index, minutes}], legM, node} or {error}; node is the nearest
  // node's row in the written lookup (its nodes numbered in the order written).
  T.walkLookup = function (lat, lon, datum, st) {
    var state = st || T.last;
    return new Promise(function (resolve) {
      lookupWalk(state, lat, lon, datum || state.datum, resolve);
    });
  };
})();
