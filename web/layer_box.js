// Layer Box (LayerMemoryBox): draw where a layer goes on the memory's picture, in the node.
// - After a run the node sends `layer_box`: the memory's composite with every layer outlined and
//   numbered (a temp PNG), its size and each layer's box. The picture is drawn in a canvas widget.
// - A mouse drag on it sets the node's x, y, width, height (image pixels, snapped to 8 px, one
//   latent pixel) and picture_width/picture_height (the size it was drawn on; the node refuses a
//   memory of another size). A drag inside the box moves it; a drag that starts on a layer's
//   outline moves that layer's box and sets `layer` (link mask and layer to EditLayer).
// - Brush and Eraser (the buttons above the picture; the size is the brush's radius in image
//   pixels) paint a rough mask: each stroke is appended to the node's `strokes` input as JSON
//   ({"tool", "radius", "points"} in image pixels), which the node rasterises, so an API prompt
//   sends the same text. Painting sets `shape` to "strokes" (kept at "box + strokes" if chosen);
//   a new box over strokes makes it "box + strokes"; a dragged outline makes it "layer's shape"
//   (the layer's own mask moved, not its box). Clear removes the strokes.
// - Before any run the widget says to run once. The last picture's info is kept in the node's
//   properties, so a reopened workflow shows it again while the server still has the temp file.
// Only the frontend extension API is used: registerExtension, a DOM widget, onExecuted.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE = "LayerMem_LayerMemoryBox";
const WIDGET = "layer_box_picture";
const PROPERTY = "layer_box_picture"; // kept in the workflow: the picture is back on reload
const GRID = 8; // image pixels per latent pixel
const EDGE_PX = 7; // screen pixels either side of an outline that grab its layer
const BOX_FIELDS = ["x", "y", "width", "height"];
const TOOLS = [["box", "Box"], ["brush", "Brush"], ["eraser", "Eraser"]];
const SHAPE = { box: "box", layer: "layer's shape", strokes: "strokes", both: "box + strokes" };
const USES_BOX = new Set([SHAPE.box, SHAPE.layer, SHAPE.both]);
const USES_STROKES = new Set([SHAPE.strokes, SHAPE.both]);
const TOOL_PROPERTY = "layer_box_tool"; // the tool and brush size, kept with the node
const DEFAULT_RADIUS = 24;
const PAINT_RGB = "255, 64, 160";
const BEFORE_RUN = "Run the workflow once (Queue): the memory's picture appears here. " +
  "Then drag a box on it.";
const GONE = "The picture is no longer on the server (its temp folder is emptied on restart): " +
  "run the workflow again.";

const widgetOf = (node, name) => node.widgets?.find((w) => w.name === name);

function setValue(node, name, value) {
  const w = widgetOf(node, name);
  if (!w || w.value === value) return;
  w.value = value;
  w.callback?.(value, app.canvas, node);
}

/** The box the node's widgets hold now. */
function currentBox(node) {
  const [x, y, width, height] = BOX_FIELDS.map((f) => Number(widgetOf(node, f)?.value ?? 0));
  return { x, y, width, height };
}

const shapeOf = (node) => String(widgetOf(node, "shape")?.value ?? SHAPE.box);

/** The strokes the node's `strokes` input holds now ([] for empty or unreadable text). */
function currentStrokes(node) {
  const text = String(widgetOf(node, "strokes")?.value ?? "").trim();
  if (!text) return [];
  try {
    const data = JSON.parse(text);
    return Array.isArray(data) ? data : [];
  } catch {
    return [];
  }
}

/** Where the picture sits in the canvas element: scale and offset in CSS pixels (letterboxed). */
function layout(state) {
  const { width: W, height: H } = state.info;
  const cw = state.canvas.clientWidth, ch = state.canvas.clientHeight;
  const s = Math.min(cw / W, ch / H);
  return { s, ox: (cw - W * s) / 2, oy: (ch - H * s) / 2 };
}

/** A pointer event's position in picture pixels (the element may be scaled by the canvas zoom). */
function toPicture(state, event) {
  const rect = state.canvas.getBoundingClientRect();
  const k = rect.width / Math.max(1, state.canvas.clientWidth);
  const { s, ox, oy } = layout(state);
  return { x: ((event.clientX - rect.left) / k - ox) / s,
    y: ((event.clientY - rect.top) / k - oy) / s, perPixel: s * k };
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const inside = (p, b, pad = 0) => p.x >= b.x - pad && p.x <= b.x + b.width + pad &&
  p.y >= b.y - pad && p.y <= b.y + b.height + pad;

/** The top-most layer whose outline is under the pointer, or null. */
function outlineAt(state, p) {
  const t = EDGE_PX / p.perPixel;
  const layers = [...(state.info.layers ?? [])].reverse();
  return layers.find((l) => {
    const [x, y, width, height] = l.box;
    const b = { x, y, width, height };
    const core = { x: x + t, y: y + t, width: width - 2 * t, height: height - 2 * t };
    return inside(p, b, t) && !(core.width > 0 && core.height > 0 && inside(p, core));
  }) ?? null;
}

/** What `layer` gets for a dragged layer: its name where the name picks it, else its index. */
function layerValue(state, layer) {
  const choice = (state.choices ?? []).find((c) => c.label.startsWith(`${layer.index}:`));
  return choice?.value ?? String(layer.index);
}

/** The box a drag makes, snapped to the latent grid and kept inside the picture. */
function dragBox(state, drag, p) {
  const { width: W, height: H } = state.info;
  if (drag.mode === "new") {
    const x0 = clamp(Math.floor(Math.min(drag.start.x, p.x) / GRID) * GRID, 0, W);
    const y0 = clamp(Math.floor(Math.min(drag.start.y, p.y) / GRID) * GRID, 0, H);
    const x1 = clamp(Math.ceil(Math.max(drag.start.x, p.x) / GRID) * GRID, 0, W);
    const y1 = clamp(Math.ceil(Math.max(drag.start.y, p.y) / GRID) * GRID, 0, H);
    const moved = Math.abs(p.x - drag.start.x) + Math.abs(p.y - drag.start.y) > 2;
    return moved ? { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } : null;
  }
  const { from } = drag;
  const w = Math.min(from.width, W), h = Math.min(from.height, H);
  return { x: clamp(Math.round((from.x + p.x - drag.start.x) / GRID) * GRID, 0, W - w),
    y: clamp(Math.round((from.y + p.y - drag.start.y) / GRID) * GRID, 0, H - h),
    width: w, height: h };
}

function wrapText(ctx, text, maxWidth) {
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const next = line ? `${line} ${word}` : word;
    if (ctx.measureText(next).width > maxWidth && line) { lines.push(line); line = word; }
    else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

function drawNote(ctx, text, cw, ch, top) {
  ctx.font = "13px sans-serif";
  const lines = wrapText(ctx, text, cw - 20);
  const h = lines.length * 17 + 10;
  const y0 = top ? 0 : ch - h;
  ctx.fillStyle = "rgba(0, 0, 0, 0.7)";
  ctx.fillRect(0, y0, cw, h);
  ctx.fillStyle = "#fff";
  lines.forEach((l, i) => ctx.fillText(l, 10, y0 + 20 + i * 17));
}

function draw(node) {
  const state = node.layerBox;
  const el = state.canvas;
  const dpr = window.devicePixelRatio || 1;
  const cw = el.clientWidth, ch = el.clientHeight;
  if (!cw || !ch) return;
  el.width = Math.round(cw * dpr);
  el.height = Math.round(ch * dpr);
  const ctx = el.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#1b1b1b";
  ctx.fillRect(0, 0, cw, ch);
  if (!state.info || !state.ready) {
    drawNote(ctx, state.info && state.failed ? GONE : BEFORE_RUN, cw, ch, true);
    return;
  }
  const { s, ox, oy } = layout(state);
  ctx.drawImage(state.image, ox, oy, state.info.width * s, state.info.height * s);
  const shape = shapeOf(node);
  const painting = state.drag?.mode === "paint";
  if (USES_STROKES.has(shape) || painting) drawStrokes(node, ctx, { s, ox, oy });
  if (state.hover && state.tool !== "box") {
    ctx.beginPath();
    ctx.arc(ox + state.hover.x * s, oy + state.hover.y * s, state.radius * s, 0, 2 * Math.PI);
    ctx.strokeStyle = state.tool === "eraser" ? "#fff" : `rgb(${PAINT_RGB})`;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
  if (USES_BOX.has(shape) || state.drag?.box) drawBox(node, ctx, { s, ox, oy });
  const drawnOn = ["picture_width", "picture_height"].map((f) => Number(widgetOf(node, f)?.value));
  const otherSize = drawnOn[0] > 0 && (drawnOn[0] !== state.info.width ||
    drawnOn[1] !== state.info.height);
  const note = state.note || (otherSize ? `The box was drawn on a ${drawnOn[0]}×${drawnOn[1]} ` +
    `picture, this one is ${state.info.width}×${state.info.height}: drag the box again.` : "");
  if (note) drawNote(ctx, note, cw, ch, false);
}

/** The painted mask as the node rasterises it (round brush along each line; the eraser cuts),
 * tinted over the picture. For "box + strokes" the box is painted first. */
function drawStrokes(node, ctx, { s, ox, oy }) {
  const state = node.layerBox;
  const { width: W, height: H } = state.info;
  const off = state.paintLayer ?? (state.paintLayer = document.createElement("canvas"));
  if (off.width !== W || off.height !== H) { off.width = W; off.height = H; }
  const p = off.getContext("2d");
  p.globalCompositeOperation = "source-over";
  p.clearRect(0, 0, W, H);
  p.fillStyle = p.strokeStyle = `rgb(${PAINT_RGB})`;
  if (shapeOf(node) === SHAPE.both && !state.drag?.box) {
    const b = currentBox(node);
    p.fillRect(b.x, b.y, b.width, b.height);
  }
  const strokes = [...currentStrokes(node), ...(state.drag?.stroke ? [state.drag.stroke] : [])];
  for (const st of strokes) {
    if (!Array.isArray(st?.points) || !st.points.length || !(st.radius > 0)) continue;
    p.globalCompositeOperation = st.tool === "eraser" ? "destination-out" : "source-over";
    p.lineWidth = 2 * st.radius;
    p.lineCap = p.lineJoin = "round";
    p.beginPath();
    const [x0, y0] = st.points[0];
    if (st.points.length === 1) {
      p.arc(x0, y0, st.radius, 0, 2 * Math.PI);
      p.fill();
      continue;
    }
    p.moveTo(x0, y0);
    for (const [x, y] of st.points.slice(1)) p.lineTo(x, y);
    p.stroke();
  }
  ctx.save();
  ctx.globalAlpha = 0.5;
  ctx.drawImage(off, ox, oy, W * s, H * s);
  ctx.restore();
}

/** The box the node holds (or the drag makes), dashed, with its numbers. */
function drawBox(node, ctx, { s, ox, oy }) {
  const state = node.layerBox;
  const b = state.drag?.box ?? currentBox(node);
  const r = [ox + b.x * s, oy + b.y * s, b.width * s, b.height * s];
  ctx.fillStyle = "rgba(255, 255, 255, 0.18)";
  ctx.fillRect(...r);
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.strokeStyle = "#000";
  ctx.strokeRect(...r);
  ctx.lineDashOffset = 5;
  ctx.strokeStyle = "#fff";
  ctx.strokeRect(...r);
  ctx.setLineDash([]);
  ctx.lineDashOffset = 0;
  ctx.font = "12px sans-serif";
  ctx.fillStyle = "#fff";
  ctx.fillText(`${b.x}, ${b.y}  ${b.width}×${b.height}`, r[0] + 4, Math.max(12, r[1] - 4));
}

/** Sets the node's widgets from a finished drag and says what to connect. */
function commit(node, drag) {
  const state = node.layerBox;
  const box = drag.box;
  if (!box || box.width < GRID || box.height < GRID) {
    state.note = "Drag to draw a box: press, move, release (a click draws nothing).";
    return;
  }
  for (const f of BOX_FIELDS) setValue(node, f, box[f]);
  setValue(node, "picture_width", state.info.width);
  setValue(node, "picture_height", state.info.height);
  if (drag.mode === "layer") {
    setValue(node, "layer", layerValue(state, drag.layer));
    setValue(node, "shape", SHAPE.layer);
    state.note = `Layer ${drag.layer.index} '${drag.layer.name}' moved: link this node's mask and ` +
      "layer outputs to Edit Layer's mask and layer, then Queue.";
  } else {
    if (drag.mode === "new") {
      setValue(node, "layer", "");
      const withStrokes = USES_STROKES.has(shapeOf(node)) && currentStrokes(node).length;
      setValue(node, "shape", withStrokes ? SHAPE.both : SHAPE.box);
    }
    state.note = `Box ${box.x}, ${box.y}, ${box.width}×${box.height}` +
      (shapeOf(node) === SHAPE.both ? " with the strokes" : "") +
      ": link the mask to Add Layer's mask, then Queue.";
  }
  node.setDirtyCanvas(true, true);
}

/** A point inside the picture, in whole image pixels (what the node accepts). */
function paintPoint(state, p) {
  return [Math.round(clamp(p.x, 0, state.info.width)), Math.round(clamp(p.y, 0, state.info.height))];
}

/** Appends a finished stroke to the node's `strokes` input and makes the shape use it. */
function commitStroke(node, stroke) {
  const state = node.layerBox;
  const strokes = [...currentStrokes(node), stroke];
  setValue(node, "strokes", JSON.stringify(strokes));
  setValue(node, "picture_width", state.info.width);
  setValue(node, "picture_height", state.info.height);
  if (!USES_STROKES.has(shapeOf(node))) setValue(node, "shape", SHAPE.strokes);
  if (shapeOf(node) === SHAPE.strokes) setValue(node, "layer", "");
  state.note = `${strokes.length} stroke${strokes.length > 1 ? "s" : ""} (shape ` +
    `'${shapeOf(node)}'): link the mask to Add Layer's mask, then Queue. Clear removes them.`;
  node.setDirtyCanvas(true, true);
}

/** Removes every stroke; a shape that used them falls back to the box. */
function clearStrokes(node) {
  setValue(node, "strokes", "");
  if (USES_STROKES.has(shapeOf(node))) setValue(node, "shape", SHAPE.box);
  node.layerBox.note = "Strokes cleared: the mask is the box.";
  draw(node);
  node.setDirtyCanvas(true, true);
}

function onPointerDown(node, event) {
  const state = node.layerBox;
  if (event.button !== 0) return; // the canvas keeps other buttons (pan, menus)
  event.preventDefault();
  event.stopPropagation();
  if (!state.info || !state.ready) {
    state.note = BEFORE_RUN;
    draw(node);
    return;
  }
  const p = toPicture(state, event);
  if (state.tool !== "box") {
    state.drag = { mode: "paint", stroke: { tool: state.tool, radius: state.radius,
      points: [paintPoint(state, p)] } };
    state.canvas.setPointerCapture?.(event.pointerId);
    draw(node);
    return;
  }
  const layer = outlineAt(state, p);
  const current = currentBox(node);
  if (layer) {
    const [x, y, width, height] = layer.box;
    state.drag = { mode: "layer", layer, start: p, from: { x, y, width, height } };
    state.drag.box = state.drag.from;
  } else if (USES_BOX.has(shapeOf(node)) && inside(p, current) && current.width > 0 &&
      current.height > 0) { // the box is shown: a drag inside moves it
    state.drag = { mode: "move", start: p, from: current, box: current };
  } else {
    state.drag = { mode: "new", start: p, box: null };
  }
  state.canvas.setPointerCapture?.(event.pointerId);
  draw(node);
}

function onPointerMove(node, event) {
  const state = node.layerBox;
  if (state.info && state.ready && state.tool !== "box") {
    const p = toPicture(state, event);
    state.hover = { x: p.x, y: p.y };
    if (!state.drag) draw(node);
  }
  if (!state.drag) return;
  event.preventDefault();
  event.stopPropagation();
  const p = toPicture(state, event);
  if (state.drag.mode === "paint") {
    const points = state.drag.stroke.points;
    const next = paintPoint(state, p), last = points[points.length - 1];
    const step = Math.max(2, state.drag.stroke.radius / 4); // fewer points, the same line
    if (Math.hypot(next[0] - last[0], next[1] - last[1]) >= step) points.push(next);
  } else {
    state.drag.box = dragBox(state, state.drag, p);
  }
  draw(node);
}

function onPointerUp(node, event) {
  const state = node.layerBox;
  if (!state.drag) return;
  event.preventDefault();
  event.stopPropagation();
  const drag = state.drag;
  state.drag = null;
  if (drag.mode === "paint") {
    const points = drag.stroke.points, end = paintPoint(state, toPicture(state, event));
    const last = points[points.length - 1];
    if (end[0] !== last[0] || end[1] !== last[1]) points.push(end);
    commitStroke(node, drag.stroke);
    draw(node);
    return;
  }
  drag.box = dragBox(state, drag, toPicture(state, event)) ?? (drag.mode === "new" ? null : drag.box);
  commit(node, drag);
  draw(node);
}

/** The tool buttons, the brush size and Clear, above the picture (plain DOM: clickable). */
function toolbar(node) {
  const state = node.layerBox;
  const bar = document.createElement("div");
  bar.style.cssText = "display:flex;gap:4px;align-items:center;padding:2px 0 4px;" +
    "font:12px sans-serif;color:#ddd;flex:0 0 auto";
  const buttons = TOOLS.map(([tool, label]) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.dataset.tool = tool;
    b.style.cssText = "padding:2px 8px;border-radius:4px;border:1px solid #666;cursor:pointer";
    b.addEventListener("click", (e) => { e.stopPropagation(); setTool(node, tool); });
    bar.append(b);
    return b;
  });
  const size = document.createElement("input");
  Object.assign(size, { type: "range", min: 2, max: 128, step: 2, value: state.radius,
    title: "Brush radius in image pixels" });
  size.dataset.brushSize = "";
  size.style.cssText = "width:90px";
  const shown = document.createElement("span");
  const showSize = () => { shown.textContent = `${state.radius} px`; };
  size.addEventListener("input", () => {
    state.radius = Number(size.value);
    keepTool(node);
    showSize();
    draw(node);
  });
  const clear = document.createElement("button");
  clear.textContent = "Clear";
  clear.dataset.clearStrokes = "";
  clear.title = "Remove every brush and eraser stroke";
  clear.style.cssText = buttons[0].style.cssText;
  clear.addEventListener("click", (e) => { e.stopPropagation(); clearStrokes(node); });
  bar.append(size, shown, clear);
  bar.addEventListener("pointerdown", (e) => e.stopPropagation()); // not a drag of the node
  state.showTool = () => {
    for (const b of buttons) {
      const on = b.dataset.tool === state.tool;
      b.style.background = on ? "#3a6ea5" : "#333";
      b.style.color = on ? "#fff" : "#ccc";
    }
    size.value = state.radius;
    showSize();
    state.canvas.style.cursor = state.tool === "box" ? "crosshair" : "none";
  };
  return bar;
}

function keepTool(node) {
  node.properties = node.properties ?? {};
  node.properties[TOOL_PROPERTY] = { tool: node.layerBox.tool, radius: node.layerBox.radius };
}

function setTool(node, tool) {
  const state = node.layerBox;
  state.tool = tool;
  state.hover = null;
  keepTool(node);
  state.showTool();
  draw(node);
}

/** Shows a picture the node sent (or kept): loads it from the server's /view. */
function showPicture(node, info, choices) {
  const state = node.layerBox;
  state.info = info;
  state.choices = choices ?? state.choices;
  state.ready = false;
  state.failed = false;
  node.properties = node.properties ?? {};
  node.properties[PROPERTY] = { info, choices: state.choices };
  const params = new URLSearchParams({ filename: info.filename, subfolder: info.subfolder ?? "",
    type: info.type ?? "temp" });
  const image = new Image();
  image.onload = () => { if (state.image === image) { state.ready = true; draw(node); } };
  image.onerror = () => { if (state.image === image) { state.failed = true; draw(node); } };
  state.image = image;
  image.src = api.apiURL(`/view?${params}`);
  draw(node);
}

function addPictureWidget(node) {
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "width:100%;flex:1 1 auto;min-height:0;display:block;cursor:crosshair;" +
    "touch-action:none";
  canvas.dataset.layerMemory = NODE;
  node.layerBox = { canvas, info: null, ready: false, drag: null, note: "", key: "",
    tool: "box", radius: DEFAULT_RADIUS, hover: null };
  const box = document.createElement("div");
  box.style.cssText = "display:flex;flex-direction:column;width:100%;height:100%";
  box.dataset.layerBox = "";
  box.append(toolbar(node), canvas);
  node.layerBox.showTool();
  const widget = node.addDOMWidget(WIDGET, "layer_box", box, {
    serialize: false, hideOnZoom: false, getMinHeight: () => 270,
    getValue: () => "", setValue: () => {},
    onDraw: () => { // each frame: redraw only when the box, the size or the picture changed
      const b = currentBox(node);
      const drawnOn = ["picture_width", "picture_height"].map((f) => widgetOf(node, f)?.value);
      const key = [b.x, b.y, b.width, b.height, ...drawnOn, canvas.clientWidth,
        canvas.clientHeight, node.layerBox.ready, shapeOf(node),
        widgetOf(node, "strokes")?.value ?? ""].join(",");
      if (key !== node.layerBox.key) { node.layerBox.key = key; draw(node); }
    },
  });
  widget.serialize = false; // display only: not in widgets_values, nor in the prompt
  canvas.addEventListener("pointerdown", (e) => onPointerDown(node, e));
  canvas.addEventListener("pointermove", (e) => onPointerMove(node, e));
  canvas.addEventListener("pointerup", (e) => onPointerUp(node, e));
  canvas.addEventListener("pointercancel", () => { node.layerBox.drag = null; draw(node); });
  canvas.addEventListener("pointerleave", () => { node.layerBox.hover = null; draw(node); });
  node.setSize([Math.max(node.size[0], 360), Math.max(node.size[1], 560)]);
}

app.registerExtension({
  name: "layer_memory.box",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = onNodeCreated?.apply(this, arguments);
      addPictureWidget(this);
      return r;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const info = message?.layer_box?.[0];
      if (info) {
        this.layerBox.note = "";
        showPicture(this, info, message.layer_choices);
      }
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      const tool = this.properties?.[TOOL_PROPERTY];
      if (tool && TOOLS.some(([t]) => t === tool.tool)) {
        this.layerBox.tool = tool.tool;
        this.layerBox.radius = Number(tool.radius) || DEFAULT_RADIUS;
        this.layerBox.showTool();
      }
      const kept = this.properties?.[PROPERTY];
      if (kept?.info?.filename) showPicture(this, kept.info, kept.choices);
    };
  },
});
