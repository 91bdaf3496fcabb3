// The `layer` input of Delete Layer, Edit Layer, Layer History and Rename Layer offers the memory's
// layers by number and name after a run. The input stays a text box (an API prompt types an index
// or a name as before); the node sends `layer_choices` (its input memory's layers) and a
// "pick layer" list under the node puts the chosen layer into `layer`. The list is not sent to
// the server and is kept in the node's properties, so a reopened workflow offers it again.
import { app } from "../../scripts/app.js";

const NODES = new Set(["LayerMem_DeleteLayer", "LayerMem_EditLayer", "LayerMem_LayerMemoryHistory", "LayerMem_RenameLayer"]);
const PICK = "pick layer";
const PROPERTY = "layer_memory_choices";
const BEFORE_RUN = "(run once to list the layers)";

/** The "pick layer" list, made on first use (last widget: widgets_values keep their order). */
function pickWidget(node) {
  let pick = node.widgets?.find((w) => w.name === PICK);
  if (pick) return pick;
  pick = node.addWidget("combo", PICK, BEFORE_RUN, (label) => {
    const choice = (node.properties?.[PROPERTY] ?? []).find((c) => c.label === label);
    const layer = node.widgets?.find((w) => w.name === "layer");
    if (!choice || !layer) return;
    layer.value = choice.value;
    layer.callback?.(choice.value, app.canvas, node);
    node.setDirtyCanvas(true, true);
  }, { values: [BEFORE_RUN], serialize: false });
  pick.serialize = false; // not in widgets_values, nor in the prompt (options.serialize)
  return pick;
}

/** Offers `choices` ([{label, value}]) and shows the one `layer` picks now, if any. */
function offer(node, choices) {
  node.properties = node.properties ?? {};
  node.properties[PROPERTY] = choices;
  const pick = pickWidget(node);
  pick.options.values = choices.map((c) => c.label);
  const layer = String(node.widgets?.find((w) => w.name === "layer")?.value ?? "").trim();
  const current = choices.find((c) => c.value === layer || c.label.split(":")[0] === layer);
  pick.value = current?.label ?? `(${choices.length} layers: pick one)`;
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  node.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "layer_memory.layer_choices",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const choices = message?.layer_choices;
      if (Array.isArray(choices) && choices.length) offer(this, choices);
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      const kept = this.properties?.[PROPERTY];
      if (Array.isArray(kept) && kept.length) offer(this, kept);
    };
  },
});
