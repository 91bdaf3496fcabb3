// Opens each UI workflow of workflows/ in ComfyUI's real frontend (headless Chromium), runs it with
// the Queue button, and reports what a user sees: missing node types, page errors, progress bars
// seen during sampling, the text shown on nodes, the images on nodes. Optionally saves pictures:
// a screenshot of the graph after its run (README) and the template thumbnail <name>.jpg.
//
//   node tools/frontend_run.js SERVER_URL --report out.json [--pictures] [--only NAME]
//                              [--real-models] [--with-layer-box] [--toy-world NAME]...
//
// After the templates, the Layer Box phase runs on continue_scene (it needs the memory
// 1_layered_scene saves): boxes, an outline drag through Edit Layer, a brush stroke, a Delete
// Layer picked by clicks. It is skipped with --only unless --with-layer-box (a quick check of
// that phase: --only 1_layered_scene --with-layer-box).
//
// The graph on the canvas is the template as a user opens it; the prompt the Queue button posts is
// rewritten in flight for the random test models (headless.rewrite_for_random_models: 512 px,
// 3 steps) unless --real-models; a template named with --toy-world (repeatable) is rewritten for
// the toy world instead (headless.rewrite_for_toy_world: the toy model, 128 px, 12 steps, the toy
// world's words), so that its pictures can be read. The server must run with this pack and, for
// the random models, ComfyServer(random_models=True) (tools/headless.py), for the toy world
// ComfyServer(toy_world=True);
// tests/browser/test_frontend.py and tools/screenshots.py start it. Needs /usr/bin/chromium
// (or $CHROMIUM) and playwright-core (bash tools/setup.sh puts it in .browser/node_modules).
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const REPO = path.resolve(__dirname, '..');
const { chromium } = require(require.resolve('playwright-core', {
  paths: [path.join(REPO, '.browser', 'node_modules'), ...(process.env.NODE_PATH || '').split(':')],
}));

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const RUN_TIMEOUT_MS = 15 * 60 * 1000;

function parseArgs(argv) {
  const args = { url: argv[0], report: null, pictures: false, only: null, toyWorld: [] };
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--report') args.report = argv[++i];
    else if (argv[i] === '--pictures') args.pictures = true;
    else if (argv[i] === '--only') args.only = argv[++i];
    else if (argv[i] === '--real-models') args.realModels = true;
    else if (argv[i] === '--with-layer-box') args.withLayerBox = true; // with --only layered_scene
    else if (argv[i] === '--toy-world') args.toyWorld.push(argv[++i]);
  }
  return args;
}

/** UI workflows in run order: the file names start with it (1_layered_scene, 2_continue_scene,
 * ...). */
function workflows() {
  const dir = path.join(REPO, 'workflows');
  return fs.readdirSync(dir).filter((f) => /^\d+_.*\.json$/.test(f)).sort()
    .map((f) => ({ file: path.join(dir, f), name: f.replace(/\.json$/, '') }));
}

/** Whether the workflow being run is rewritten for the toy world (--toy-world), not for the
 * random models. */
const rewriting = { toyWorld: false };

/** The prompt the frontend posts, rewritten for the random test models or the toy world
 * (headless.py): the graph on the canvas stays the user's (real model names, 1024 px, 20 steps). */
function rewriteForRandomModels(prompt) {
  const rewrite = rewriting.toyWorld ? 'rewrite_for_toy_world(json.load(sys.stdin))'
    : 'rewrite_for_random_models(json.load(sys.stdin))';
  const code = `import json, sys; from tools import headless; print(json.dumps(headless.${rewrite}[0]))`;
  const out = execFileSync(process.env.PYTHON || 'python3', ['-c', code],
    { cwd: REPO, input: JSON.stringify(prompt) });
  return JSON.parse(out.toString());
}

async function routePrompts(page) {
  await page.route(/\/api\/prompt$/, async (route) => {
    const request = route.request();
    if (request.method() !== 'POST') return route.continue();
    const body = JSON.parse(request.postData());
    body.prompt = rewriteForRandomModels(body.prompt);
    return route.continue({ postData: JSON.stringify(body) });
  });
}

async function openApp(page, url) {
  await page.goto(url, { waitUntil: 'networkidle', timeout: 180000 });
  await page.waitForFunction(() => window.app && window.app.graph && window.app.canvas, null,
    { timeout: 180000 });
  await page.evaluate(async () => {
    // no first-run dialogs over the canvas
    const settings = window.app.extensionManager.setting;
    await settings.set('Comfy.TutorialCompleted', true);
    await settings.set('Comfy.Minimap.Visible', false); // keeps the pictures clear
  }).catch(() => {});
  await page.waitForTimeout(1500);
}

/** Loads a workflow as the template browser does; returns the node types the frontend lacks. */
async function load(page, workflow) {
  return page.evaluate(async ([wf, name]) => {
    const { LiteGraph } = window;
    const missing = wf.nodes.map((n) => n.type)
      .filter((t) => !(LiteGraph?.registered_node_types ?? {})[t]);
    await window.app.loadGraphData(wf, true, true, name);
    return [...new Set(missing)];
  }, [JSON.parse(fs.readFileSync(workflow.file, 'utf8')), workflow.name]);
}

/** The texts of the dialogs the load opened (e.g. Missing Models), then closes them. */
async function closeDialogs(page) {
  await page.waitForSelector('.p-dialog', { timeout: 5000 }).catch(() => {});
  await page.waitForTimeout(1000); // let the dialogs finish opening
  const texts = await page.locator('.p-dialog').allInnerTexts();
  for (let i = 0; i < 6; i++) {
    const open = await page.locator('.p-dialog').count();
    if (!open) break;
    await page.keyboard.press('Escape');
    await page.waitForTimeout(700);
    if (await page.locator('.p-dialog').count() === open) {
      await page.locator('.p-dialog .p-dialog-close-button').last()
        .click({ force: true, timeout: 5000 }).catch(() => {});
      await page.waitForTimeout(700);
    }
  }
  return texts;
}

/** Clicks Queue, watches for progress bars until the queue is empty again. */
async function run(page) {
  await page.evaluate(() => {
    const w = window;
    w.__lm = { progress: 0, executed: [], errors: [], done: false, started: false };
    const api = w.app.api ?? w.comfyAPI?.api?.api;
    if (!w.__lmHooked) { // once per page: the handlers fill the current run's w.__lm
      w.__lmHooked = true;
      api.addEventListener('execution_start', () => { w.__lm.started = true; });
      api.addEventListener('executed', (e) => w.__lm.executed.push(e.detail.node));
      api.addEventListener('execution_error',
        (e) => w.__lm.errors.push(e.detail.exception_message));
      api.addEventListener('execution_success', () => { w.__lm.done = true; });
    }
    w.__lm.timer = setInterval(() => {
      for (const n of w.app.graph.nodes) {
        if (n.progress > 0 && n.progress < 1) w.__lm.progress++;
      }
    }, 50);
  });
  await page.click('[data-testid="queue-button"]', { timeout: 30000 });
  await page.waitForFunction(() => window.__lm.done || window.__lm.errors.length, null,
    { timeout: RUN_TIMEOUT_MS, polling: 500 });
  await page.waitForTimeout(1500); // images and text arrive with the last messages
  return page.evaluate(() => {
    clearInterval(window.__lm.timer);
    const { progress, executed, errors } = window.__lm;
    return { progress_samples: progress, executed, errors };
  });
}

const SHOWN_TYPES = ['LayerMem_ListLayers', 'LayerMem_RenameLayer', 'LayerMem_SaveLayerMemory', 'SaveImage', 'LayerMem_PreviewLayers',
  'LayerMem_DeleteLayer', 'LayerMem_EditLayer'];

/** What each node that shows something looks like after the run, centred on the screen in turn
 * (the frontend draws images and text boxes only for nodes in view). */
async function nodeState(page) {
  const ids = await page.evaluate((types) => window.app.graph.nodes
    .filter((n) => types.includes(n.type)).map((n) => n.id), SHOWN_TYPES);
  const states = [];
  for (const id of ids) {
    await page.evaluate((nid) => {
      const c = window.app.canvas;
      c.centerOnNode(window.app.graph.getNodeById(nid));
      c.setDirty(true, true);
    }, id);
    await page.waitForTimeout(600);
    states.push(await page.evaluate((nid) => {
      const n = window.app.graph.getNodeById(nid);
      const box = n.widgets?.find((w) => w.name === 'layer_memory_text');
      const el = box?.inputEl ?? box?.element;
      const rect = el?.getBoundingClientRect();
      const outputs = window.app.nodeOutputs?.[String(nid)] ?? {};
      return {
        id: n.id, type: n.type, title: n.title,
        text: box ? String(box.value ?? '') : null,
        text_on_screen: !!(rect && rect.height > 20 && rect.width > 100 && el.offsetParent !== null
          && getComputedStyle(el).visibility !== 'hidden'),
        images: (n.imgs ?? []).filter((img) => img.naturalWidth > 0).length,
        output_images: (outputs.images ?? []).length,
        pick: n.widgets?.find((w) => w.name === 'pick layer')?.options?.values ?? null,
        layer: n.widgets?.find((w) => w.name === 'layer')?.value ?? null,
      };
    }, id));
  }
  return states;
}

/** Issue 24: the first Edit Layer's "pick layer" list used as a user picks from it (the combo's
 * callback); the layer it put into `layer`, then the old value back. */
async function pickLayer(page) {
  return page.evaluate(() => {
    const n = window.app.graph.nodes.find((node) => node.type === 'LayerMem_EditLayer');
    const pick = n?.widgets?.find((w) => w.name === 'pick layer');
    const layer = n?.widgets?.find((w) => w.name === 'layer');
    if (!pick || !layer) return null;
    const label = pick.options.values[pick.options.values.length - 1];
    const before = layer.value;
    pick.value = label;
    pick.callback?.(label);
    const after = layer.value;
    layer.value = before;
    const serialized = window.app.graph.serialize().nodes.find((s) => s.id === n.id);
    return { label, before, after, widgets_values: serialized.widgets_values };
  });
}

/** The graph saved and opened again (as a saved workflow or a page reload restores it): each
 * text node's text box value and size, before any new run. */
async function reloadedTexts(page) {
  await page.evaluate(async () => {
    const data = JSON.parse(JSON.stringify(window.app.graph.serialize()));
    window.app.nodeOutputs = {};
    await window.app.loadGraphData(data);
  });
  await page.waitForTimeout(1000);
  return page.evaluate(() => window.app.graph.nodes
    .filter((n) => n.type === 'LayerMem_ListLayers')
    .map((n) => {
      const box = n.widgets?.find((w) => w.name === 'layer_memory_text');
      return { id: n.id, text: box ? String(box.value ?? '') : null, size: [...n.size] };
    }));
}

/** Each seed node made as the node menu makes it: its seed's after-generate control value. */
async function newNodeSeedControls(page) {
  return page.evaluate(() => {
    const out = {};
    for (const type of ["LayerMem_LayerMemory", "LayerMem_AddLayer", "LayerMem_EditLayer", "LayerMem_DeleteLayer",
      "LayerMem_LayerMemoryFromImage"]) {
      const node = window.LiteGraph.createNode(type);
      window.app.graph.add(node);
      const seed = node.widgets?.find((w) => w.name === "seed");
      const control = seed?.linkedWidgets?.[0] ??
        node.widgets?.find((w) => w.name === "control_after_generate");
      out[type] = control?.value ?? null;
      window.app.graph.remove(node);
    }
    return out;
  });
}

async function linkColour(page) {
  return page.evaluate(() => {
    const cls = window.app.canvas.constructor;
    return cls.link_type_colors?.LAYER_MEMORY ?? null;
  });
}

/** A screenshot of just the nodes titled `titles` (each the first below the one before it; a node
 * without a title of its own goes by its type's name), as large as the view allows up to zoom 1,
 * saved as `file`. */
async function regionShot(page, titles, file) {
  const clip = await page.evaluate((names) => {
    const c = window.app.canvas;
    c.deselectAll?.();
    const found = [];
    for (const t of names) {
      const y = found.length ? found[found.length - 1].pos[1] - 100 : -Infinity;
      const n = window.app.graph.nodes.filter((m) => m.title === t && m.pos[1] >= y)
        .sort((a, b) => a.pos[1] - b.pos[1])[0];
      if (n) found.push(n);
    }
    const m = 24;
    const x0 = Math.min(...found.map((n) => n.pos[0])) - m;
    const y0 = Math.min(...found.map((n) => n.pos[1])) - 30 - m;
    const x1 = Math.max(...found.map((n) => n.pos[0] + n.size[0])) + m;
    const y1 = Math.max(...found.map((n) => n.pos[1] + n.size[1])) + m;
    const r = c.canvas.getBoundingClientRect();
    const top = 90; // the frontend's bars over the canvas
    const sc = Math.min(1, 0.98 * r.width / (x1 - x0), 0.98 * (r.height - top) / (y1 - y0));
    c.ds.scale = sc;
    c.ds.offset = [r.width / 2 / sc - (x0 + x1) / 2, (top + (r.height - top) / 2) / sc
      - (y0 + y1) / 2];
    c.setDirty(true, true);
    const [sx, sy] = [(x0 + c.ds.offset[0]) * sc, (y0 + c.ds.offset[1]) * sc];
    return { x: r.left + sx, y: r.top + sy, width: (x1 - x0) * sc, height: (y1 - y0) * sc,
      titles: found.map((n) => n.title) };
  }, titles);
  await page.waitForTimeout(1500);
  const { titles: found, ...box } = clip;
  await page.screenshot({ path: file, type: 'jpeg', quality: 70, clip: box });
  return found;
}

/** README picture: the view on the node the reader should look at, after the run; template
 * thumbnail: the whole graph after the run, as the template's card. */
async function pictures(page, wf, docsDir) {
  const focus = async (type, scale) => {
    await page.evaluate(([t, sc]) => {
      const c = window.app.canvas;
      c.deselectAll?.();
      c.ds.scale = sc;
      const node = window.app.graph.nodes.find((n) => n.type === t);
      if (node) c.centerOnNode(node);
      c.setDirty(true, true);
    }, [type, scale]);
    await page.waitForTimeout(1500);
  };
  const target = { continue_scene: 'LayerMem_ListLayers', edit_picture: 'LayerMem_PreviewLayers' };
  // the toy template: the last object added, and the delete, with their pictures
  const region = { sd15_layered_scene: ['Add the sign', 'Save Image', 'Delete the crate',
    'Save Image'] };
  const name = wf.name.replace(/^\d+_/, '');
  const shot = path.join(docsDir, `${name}.jpg`);
  if (region[name]) {
    await regionShot(page, region[name], shot);
  } else {
    await focus(target[name] ?? 'LayerMem_SaveLayerMemory', 0.8);
    await page.screenshot({ path: shot, type: 'jpeg', quality: 65 });
  }
  const box = await page.locator('#graph-canvas').boundingBox();
  const [w, h] = [800, 600];
  const clip = { x: box.x + (box.width - w) / 2, y: box.y + (box.height - h) / 2,
    width: w, height: h };
  await page.evaluate(([cw, ch, c0]) => { // the whole graph in the clip: its shape, after the run
    const c = window.app.canvas;
    const nodes = window.app.graph.nodes;
    const x0 = Math.min(...nodes.map((n) => n.pos[0]));
    const y0 = Math.min(...nodes.map((n) => n.pos[1] - 30));
    const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
    const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
    const scale = 0.96 * Math.min(cw / (x1 - x0), ch / (y1 - y0));
    c.ds.scale = scale;
    c.ds.offset = [(c0.x + (cw - scale * (x1 - x0)) / 2) / scale - x0,
      (c0.y + (ch - scale * (y1 - y0)) / 2) / scale - y0];
    c.setDirty(true, true);
  }, [w, h, { x: clip.x - box.x, y: clip.y - box.y }]);
  await page.waitForTimeout(1500);
  const thumb = path.join(REPO, 'workflows', `${wf.name}.jpg`);
  await page.screenshot({ path: thumb, type: 'jpeg', quality: 60, clip });
  return [shot, thumb];
}
/** Issue 24: continue_scene's Layer Box (the leopard's box): a press before any run, a run (the
 * picture arrives), a mouse drag of a new box on the node's canvas, a run with that box (List
 * Layers' table), and a drag of the top layer's outline. */
async function layerBoxRun(page) {
  const wf = workflows().find((w) => w.name.includes('continue_scene'));
  await page.evaluate(() => { window.app.nodeOutputs = {}; }); // opened as new: no earlier run
  await load(page, wf);
  await closeDialogs(page);
  const ids = await page.evaluate(() => {
    const find = (t) => window.app.graph.nodes.find((n) => n.type === t);
    return { box: find('LayerMem_LayerMemoryBox').id, list: find('LayerMem_ListLayers').id };
  });
  const values = () => page.evaluate((id) => {
    const n = window.app.graph.getNodeById(id);
    return Object.fromEntries(['x', 'y', 'width', 'height', 'picture_width', 'picture_height',
      'layer', 'shape'].map((k) => [k, n.widgets.find((w) => w.name === k).value]));
  }, ids.box);
  /** The node's canvas on screen and where the picture is in it (centred on the node first). */
  const geometry = async () => {
    await page.evaluate((id) => {
      const c = window.app.canvas;
      c.ds.scale = 1;
      c.centerOnNode(window.app.graph.getNodeById(id));
      c.setDirty(true, true);
    }, ids.box);
    await page.waitForTimeout(800);
    return page.evaluate((id) => {
      const n = window.app.graph.getNodeById(id);
      const el = n.layerBox.canvas;
      const r = el.getBoundingClientRect();
      const k = r.width / el.clientWidth;
      const info = n.layerBox.info;
      const s = info ? Math.min(el.clientWidth / info.width, el.clientHeight / info.height) : 1;
      const ox = info ? (el.clientWidth - info.width * s) / 2 : 0;
      const oy = info ? (el.clientHeight - info.height * s) / 2 : 0;
      return { left: r.left, top: r.top, width: r.width, height: r.height, k, s, ox, oy,
        info, ready: n.layerBox.ready, note: n.layerBox.note };
    }, ids.box);
  };
  const screen = (g, p) => ({ x: g.left + (g.ox + p.x * g.s) * g.k,
    y: g.top + (g.oy + p.y * g.s) * g.k });
  const picture = (g, q) => ({ x: ((q.x - g.left) / g.k - g.ox) / g.s,
    y: ((q.y - g.top) / g.k - g.oy) / g.s });
  const drag = async (from, to) => {
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    for (let i = 1; i <= 8; i++) {
      await page.mouse.move(from.x + (to.x - from.x) * i / 8, from.y + (to.y - from.y) * i / 8);
    }
    await page.mouse.up();
    await page.waitForTimeout(300);
  };
  const out = { before: await values() };
  let g = await geometry();
  out.canvas_on_screen = g.width > 100 && g.height > 100;
  await drag({ x: g.left + g.width / 2, y: g.top + g.height / 2 },
    { x: g.left + g.width / 2 + 60, y: g.top + g.height / 2 + 40 });
  out.before_run = { values: await values(), note: (await geometry()).note };
  out.first_run = await run(page);
  await page.waitForFunction((id) => window.app.graph.getNodeById(id).layerBox.ready, ids.box,
    { timeout: 30000 }).catch(() => {});
  g = await geometry();
  out.picture = { ready: g.ready, width: g.info?.width, height: g.info?.height,
    layers: g.info?.layers ?? [] };
  // a new box: from a point outside the current box and away from every outline
  const cur = await values();
  const tol = 14 / (g.s * g.k);
  const nearEdge = (p, [x, y, w, h]) => p.x > x - tol && p.x < x + w + tol && p.y > y - tol &&
    p.y < y + h + tol && !(p.x > x + tol && p.x < x + w - tol && p.y > y + tol && p.y < y + h - tol);
  const W = g.info.width, H = g.info.height;
  let start = null;
  for (let y = H * 0.55; y < H * 0.9 && !start; y += 8) {
    for (let x = W * 0.45; x < W * 0.7 && !start; x += 8) {
      const p = { x, y }, e = { x: x - W * 0.3, y: y - H * 0.3 };
      const inCur = p.x >= cur.x && p.x <= cur.x + cur.width && p.y >= cur.y &&
        p.y <= cur.y + cur.height;
      if (!inCur && !out.picture.layers.some((l) => nearEdge(p, l.box) || nearEdge(e, l.box))) {
        start = p;
      }
    }
  }
  const from = screen(g, start), to = screen(g, { x: start.x - W * 0.3, y: start.y - H * 0.3 });
  await drag(from, to);
  out.new_box = { from: picture(g, from), to: picture(g, to), values: await values(),
    note: (await geometry()).note };
  out.second_run = await run(page);
  out.table = await page.evaluate((id) => {
    const n = window.app.graph.getNodeById(id);
    return String(n.widgets?.find((w) => w.name === 'layer_memory_text')?.value ?? '');
  }, ids.list);
  // the top layer's outline, grabbed at the middle of its top edge, moved right and down
  g = await geometry();
  const top = g.info.layers[g.info.layers.length - 1];
  const [lx, ly, lw, lh] = top.box;
  const grab = screen(g, { x: lx + lw / 2, y: ly });
  // right and down, or left and up where the picture's edge would stop the box
  const by = { x: (lx + lw + W * 0.08 <= W ? 1 : -1) * W * 0.08,
    y: (ly + lh + H * 0.06 <= H ? 1 : -1) * H * 0.06 };
  await drag(grab, { x: grab.x + by.x * g.s * g.k, y: grab.y + by.y * g.s * g.k });
  out.moved_layer = { layer: top, by, values: await values(), note: (await geometry()).note };
  out.moved_layer.edit = await editMoved(page, ids.box);
  await brushAndDelete(page, out, { ids, values, geometry, screen, drag });
  return out;
}

/** The dragged outline run through Edit Layer: an Edit Layer on the memory the Layer Box shows,
 * its mask and layer linked from the Layer Box's outputs, and a second Layer Box on Edit Layer's
 * memory (its outlines are the edited layers' boxes); one run, then both nodes are removed. */
async function editMoved(page, boxId) {
  const made = await page.evaluate((id) => {
    const g = window.app.graph;
    const box = g.getNodeById(id);
    const linkOf = (node, name) => {
      const lid = node.inputs.find((i) => i.name === name).link;
      return g.getLink?.(lid) ?? g.links.get?.(lid) ?? g.links[lid];
    };
    const memory = linkOf(box, 'memory');
    const model = linkOf(g.nodes.find((n) => n.type === 'LayerMem_AddLayer'), 'model');
    const edit = window.LiteGraph.createNode('LayerMem_EditLayer');
    const look = window.LiteGraph.createNode('LayerMem_LayerMemoryBox');
    g.add(edit);
    g.add(look);
    edit.pos = [box.pos[0], box.pos[1] + box.size[1] + 200];
    look.pos = [edit.pos[0] + edit.size[0] + 80, edit.pos[1]];
    const slot = (node, name) => node.inputs.findIndex((i) => i.name === name);
    g.getNodeById(memory.origin_id).connect(memory.origin_slot, edit, slot(edit, 'memory'));
    g.getNodeById(model.origin_id).connect(model.origin_slot, edit, slot(edit, 'model'));
    box.connect(0, edit, slot(edit, 'mask'));
    box.connect(1, edit, slot(edit, 'layer'));
    edit.connect(0, look, slot(look, 'memory'));
    return { edit: edit.id, look: look.id,
      layer_linked: edit.inputs[slot(edit, 'layer')].link != null };
  }, boxId);
  made.run = await run(page);
  made.layers = await page.evaluate((id) => window.app.graph.getNodeById(id).layerBox.info
    ?.layers ?? null, made.look);
  await page.evaluate((ids) => {
    for (const id of ids) window.app.graph.remove(window.app.graph.getNodeById(id));
  }, [made.edit, made.look]);
  return made;
}

/** The table a List Layers node shows. */
const tableOf = (page, id) => page.evaluate((nid) => {
  const n = window.app.graph.getNodeById(nid);
  return String(n.widgets?.find((w) => w.name === 'layer_memory_text')?.value ?? '');
}, id);

/** Issue 24, second round, on continue_scene after the box runs: a Delete Layer and a List Layers
 * after it are added to the graph (on Add Layer's memory); the Brush button is clicked and a
 * stroke drawn with the mouse; a run (the new layer is the stroke: List Layers' area); then a
 * layer is picked in Delete Layer's "pick layer" list with real clicks (the list opens, an entry
 * is clicked), a run, and the second List Layers' table. */
async function brushAndDelete(page, out, { ids, values, geometry, screen, drag }) {
  const added = await page.evaluate(() => {
    const g = window.app.graph;
    const add = g.nodes.find((n) => n.type === 'LayerMem_AddLayer');
    const linkId = add.inputs.find((i) => i.name === 'model').link;
    const modelLink = g.getLink?.(linkId) ?? g.links.get?.(linkId) ?? g.links[linkId];
    const del = window.LiteGraph.createNode('LayerMem_DeleteLayer');
    const list = window.LiteGraph.createNode('LayerMem_ListLayers');
    g.add(del);
    g.add(list);
    del.pos = [add.pos[0] + add.size[0] + 80, add.pos[1]];
    list.pos = [del.pos[0] + del.size[0] + 80, del.pos[1]];
    list.size = [560, 220];
    add.connect(0, del, 0);
    g.getNodeById(modelLink.origin_id).connect(modelLink.origin_slot, del, 1);
    del.connect(0, list, 0);
    del.widgets.find((w) => w.name === 'layer').value = '-1';
    return { del: del.id, list: list.id };
  });
  let g = await geometry();
  await page.click(`[data-layer-box] button[data-tool="brush"]`);
  const W = g.info.width, H = g.info.height;
  const a = { x: W * 0.2, y: H * 0.7 }, b = { x: W * 0.6, y: H * 0.75 };
  await drag(screen(g, a), screen(g, b));
  g = await geometry();
  out.brush = { from: a, to: b, values: await values(), note: g.note,
    strokes: await page.evaluate((id) => window.app.graph.getNodeById(id).widgets
      .find((w) => w.name === 'strokes').value, ids.box),
    shape: await page.evaluate((id) => window.app.graph.getNodeById(id).widgets
      .find((w) => w.name === 'shape').value, ids.box) };
  out.brush.run = await run(page);
  out.brush.table = await tableOf(page, ids.list);
  out.deleted = { before: await tableOf(page, added.list), pick_clicked: await clickPick(page,
    added.del, '1: cheetah') };
  out.deleted.layer = await page.evaluate((id) => window.app.graph.getNodeById(id).widgets
    .find((w) => w.name === 'layer').value, added.del);
  out.deleted.run = await run(page);
  out.deleted.table = await tableOf(page, added.list);
}

/** Opens a node's "pick layer" list with a mouse click on the widget and clicks `label` in the
 * menu the frontend opens; returns what was offered, or null when no menu opened. */
async function clickPick(page, id, label) {
  await page.evaluate((nid) => {
    const c = window.app.canvas;
    c.ds.scale = 1;
    c.centerOnNode(window.app.graph.getNodeById(nid));
    c.setDirty(true, true);
  }, id);
  await page.waitForTimeout(800); // drawn: the widgets have their place in the node
  const where = await page.evaluate((nid) => {
    const c = window.app.canvas;
    const n = window.app.graph.getNodeById(nid);
    const w = n.widgets.find((x) => x.name === 'pick layer');
    const h = window.LiteGraph.NODE_WIDGET_HEIGHT ?? 20;
    const wy = w.y ?? w.last_y;
    const [sx, sy] = c.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] + wy + h / 2]);
    const r = c.canvas.getBoundingClientRect();
    const k = r.width / c.canvas.width * (window.devicePixelRatio || 1);
    return { x: r.left + sx * k, y: r.top + sy * k, values: [...w.options.values] };
  }, id);
  await page.mouse.click(where.x, where.y);
  const entry = page.locator('.litecontextmenu .litemenu-entry', { hasText: label }).first();
  const opened = await entry.waitFor({ state: 'visible', timeout: 5000 }).then(() => true,
    () => false);
  if (!opened) return null;
  await entry.click();
  await page.waitForTimeout(300);
  return where.values;
}

(async () => {
  const args = parseArgs(process.argv.slice(2));
  if (!args.url) {
    console.error('usage: node tools/frontend_run.js URL --report FILE [--pictures]');
    process.exit(2);
  }
  const userDir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'lm-chromium-'));
  // a fresh profile each run (launchPersistentContext is how Playwright takes --user-data-dir)
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: FLAGS.filter((f) => f !== '--headless'),
    headless: true,
    viewport: { width: 1600, height: 1000 },
  });
  const page = browser.pages()[0] ?? await browser.newPage();
  const report = { page_errors: [], console_errors: [], workflows: [] };
  let phase = 'startup';
  page.on('pageerror', (e) => {
    report.page_errors.push({ phase, text: `${e.message}\n${e.stack || ''}` });
  });
  page.on('console', (m) => { if (m.type() === 'error') report.console_errors.push(m.text()); });
  if (!args.realModels) await routePrompts(page);
  await openApp(page, args.url);
  report.extensions = await page.evaluate(() => window.app.extensions?.map((e) => e.name) ?? []);
  report.link_colour = await linkColour(page);
  report.new_node_seed_controls = await newNodeSeedControls(page);
  const docs = path.join(REPO, 'docs', 'images');
  for (const wf of workflows()) {
    if (args.only && !wf.name.includes(args.only)) continue;
    const started = Date.now();
    phase = wf.name;
    rewriting.toyWorld = args.toyWorld.some((t) => wf.name.includes(t));
    const entry = { name: wf.name, toy_world: rewriting.toyWorld,
      missing_nodes: await load(page, wf) };
    entry.dialogs = await closeDialogs(page);
    entry.view_scale = await page.evaluate(() => window.app.canvas.ds.scale);
    entry.low_quality = await page.evaluate(() => !!window.app.canvas.low_quality);
    Object.assign(entry, await run(page));
    entry.nodes = await nodeState(page);
    entry.seconds = (Date.now() - started) / 1000;
    if (wf.name.includes('continue_scene')) entry.reloaded = await reloadedTexts(page);
    if (wf.name.includes('1_layered_scene')) entry.picked = await pickLayer(page);
    if (args.pictures) entry.pictures = await pictures(page, wf, docs);
    report.workflows.push(entry);
    console.log(`${wf.name}: ${entry.seconds.toFixed(0)} s, ${entry.executed.length} nodes ran, ` +
      `${entry.errors.length} errors, progress samples ${entry.progress_samples}`);
  }
  if (!args.only || args.withLayerBox) { // needs the memory layered_scene saved
    phase = 'layer_box';
    report.layer_box = await layerBoxRun(page);
    console.log(`layer_box: ${JSON.stringify(report.layer_box.new_box.values)}`);
  }
  await browser.close();
  fs.rmSync(userDir, { recursive: true, force: true });
  const text = JSON.stringify(report, null, 2);
  if (args.report) fs.writeFileSync(args.report, text); else console.log(text);
})().catch((e) => { console.error(e); process.exit(1); });
