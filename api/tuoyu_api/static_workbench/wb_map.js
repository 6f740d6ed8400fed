/* The map of the planner's workbench (workbench.js) and of its read-only export
 * (export.js), MIT licence: inlined before either script (tuoyu_api.routers.workbench).
 *
 * One Leaflet map in #map with the basemaps given (the first one shown; a basemap with a
 * label layer is both tiles in one group; each layer keeps its datum and name as wbDatum
 * and wbName), the five overlay groups in drawing order — 街道, gap zones (in their own
 * pane under the markers, since they take the mouse for their tooltips), isochrones,
 * existing and planned facilities — the layer control, the scale, and the view fitted
 * to `bounds` (all China without). Returns {map, layers, first}, `first` being the
 * basemap shown (or null).
 */
function tuoyuWorkbenchMap(basemaps, gapsLabel, collapsed, bounds) {
  "use strict";
  var map = L.map("map", { zoomControl: true });
  var baseLayers = {};
  var first = null;
  (basemaps || []).forEach(function (b, i) {
    var opts = {
      subdomains: b.subdomains, maxZoom: 19, maxNativeZoom: b.maxZoom, attribution: b.attribution
    };
    var layer = b.labelUrl
      ? L.layerGroup([L.tileLayer(b.url, opts), L.tileLayer(b.labelUrl, opts)])
      : L.tileLayer(b.url, opts);
    layer.wbDatum = b.datum;
    layer.wbName = b.name;
    baseLayers[b.name] = layer;
    if (i === 0) {
      layer.addTo(map);
      first = b;
    }
  });
  var layers = { units: L.layerGroup().addTo(map) };
  map.createPane("wbGaps").style.zIndex = 350;
  layers.gaps = L.layerGroup().addTo(map);
  layers.iso = L.layerGroup().addTo(map);
  layers.facilities = L.layerGroup().addTo(map);
  layers.planned = L.layerGroup().addTo(map);
  var overlays = { "街道边界 / 街道 boundaries": layers.units };
  overlays[gapsLabel] = layers.gaps;
  overlays["新增机构等时圈 / isochrones of planned"] = layers.iso;
  overlays["现有机构 / existing facilities"] = layers.facilities;
  overlays["规划机构 / planned facilities"] = layers.planned;
  L.control.layers(baseLayers, overlays, { collapsed: collapsed }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);
  if (bounds) map.fitBounds(bounds, { padding: [10, 10] });
  else map.setView([35, 105], 5);
  return { map: map, layers: layers, first: first };
}
