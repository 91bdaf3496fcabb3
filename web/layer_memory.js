// Layer Memory: what the frontend needs beyond the node definitions.
// - The `text` ui output of ListLayers, RenameLayer and SaveLayerMemory (the layer table, the
//   saved file's name) is shown on the node in a read-only text box sized to the text: frontend
//   1.27 draws PreviewText only for its own core nodes. The text is kept in the node's
//   properties, so a saved or reloaded workflow shows the last table until the next run.
// - LAYER_MEMORY wires get a colour of their own (magenta: apart from every core type colour).
// - A seed of the pack's sampling nodes starts on "fixed" after generate when the node is made
//   from the menu, so a re-run keeps the scene; a loaded workflow's own value wins (configure
//   runs after nodeCreated).
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const TEXT_NODES = new Set(["LayerMem_ListLayers", "LayerMem_RenameLayer", "LayerMem_SaveLayerMemory"]);
const WIDGET = "layer_memory_text";
const LINK_TYPE = "LAYER_MEMORY";
const LINK_COLOUR = "#D500F9"; // magenta: > 80 RGB from every core type colour (dark, light)
const SEED_NODES = new Set(["LayerMem_LayerMemory", "LayerMem_AddLayer", "LayerMem_EditLayer", "LayerMem_DeleteLayer",
  "LayerMem_LayerMemoryFromImage"]);
const SEED_CONTROL = "control_after_generate";

/** The seed's after-generate control set to "fixed" (frontend 1.27: a combo linked to the seed). */
function fixSeed(node) {
  const seed = node.widgets?.find((w) => w.name === "seed");
  const controls = [...(seed?.linkedWidgets ?? []),
    ...(node.widgets ?? []).filter((w) => w.name === SEED_CONTROL)];
  for (const control of controls) {
    if (control.options?.values?.includes?.("fixed") ?? true) control.value = "fixed";
  }
}

const TEXT_PROPERTY = "layer_memory_text"; // kept in the workflow: the table is back on reload

/** A size that shows `text` without wrapping (monospace-ish estimate, capped). */
function sizeFor(node, text) {
  const lines = text.split("\n");
  const longest = Math.max(...lines.map((l) => l.length), 10);
  const width = Math.min(900, Math.max(node.size[0], 60 + longest * 7.2));
  const height = Math.min(800, Math.max(node.size[1], 80 + lines.length * 17, 120));
  return [width, height];
}

/** Shows `text` in the node's read-only text box, making the box on first use. */
function showText(node, text) {
  node.properties = node.properties ?? {};
  node.properties[TEXT_PROPERTY] = text;
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false; // display only: never saved into widgets_values or the prompt
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.style.opacity = 0.85;
      widget.inputEl.dataset.layerMemory = node.type;
    }
  }
  widget.value = text;
  const size = node.computeSize();
  const [w, h] = sizeFor(node, text);
  node.setSize([Math.max(w, size[0]), Math.max(h, size[1])]);
  node.setDirtyCanvas(true, true);
}

/** A colour that survives palette reloads: the palette loader assigns "" to every data type. */
function pinColour(table) {
  if (!table) return;
  let value = LINK_COLOUR;
  Object.defineProperty(table, LINK_TYPE, {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: (v) => { if (v) value = v; },
  });
}

app.registerExtension({
  name: "layer_memory.ui",
  async setup() {
    pinColour(app.canvas?.constructor?.link_type_colors ?? window.LGraphCanvas?.link_type_colors);
    pinColour(app.canvas?.default_connection_color_byType);
    app.canvas?.setDirty(true, true);
  },
  async nodeCreated(node) {
    if (SEED_NODES.has(node.comfyClass ?? node.type)) fixSeed(node);
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!TEXT_NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      if (text?.length) showText(this, Array.isArray(text) ? text.join("\n") : String(text));
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      const kept = this.properties?.[TEXT_PROPERTY];
      if (typeof kept === "string" && kept.length) showText(this, kept);
    };
  },
});
