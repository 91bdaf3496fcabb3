// Loads each UI workflow of workflows/ into ComfyUI's real frontend in a headless Chromium and checks
// that the frontend turns it into exactly the API workflow of workflows/api/ (same nodes, same
// inputs, same links): the test suite checks the two files against each other, this checks them
// against the frontend's own reading of widgets_values. Saves a screenshot per workflow.
//
// Not part of the test suite (it needs Chromium and Node). Manual use:
//   bash tools/setup.sh   (Chromium, and playwright-core in .browser/node_modules)
//   python3 -c "import time; from tools.headless import ComfyServer
//   s=ComfyServer(random_models=True); s.start(); print(s.url, flush=True); time.sleep(3600)" &
//   NODE_PATH=.browser/node_modules node tools/check_ui_workflows.js http://127.0.0.1:PORT [OUTDIR]
// Exit status 1 when any workflow differs.
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const REPO = path.resolve(__dirname, '..');
const [url, outDir = '/tmp'] = process.argv.slice(2);

function differences(api, prompt) {
  const out = [];
  for (const [id, node] of Object.entries(api)) {
    const got = prompt[id];
    if (!got) { out.push(`node ${id} (${node.class_type}) missing`); continue; }
    if (got.class_type !== node.class_type) out.push(`node ${id}: ${got.class_type}, expected ${node.class_type}`);
    const keys = new Set([...Object.keys(node.inputs), ...Object.keys(got.inputs)]);
    for (const k of keys) {
      if (JSON.stringify(got.inputs[k]) !== JSON.stringify(node.inputs[k])) {
        out.push(`node ${id} (${node.class_type}).${k}: ${JSON.stringify(got.inputs[k])}, expected ${JSON.stringify(node.inputs[k])}`);
      }
    }
  }
  for (const id of Object.keys(prompt)) if (!api[id]) out.push(`extra node ${id} (${prompt[id].class_type})`);
  return out;
}

(async () => {
  if (!url) { console.error('usage: node tools/check_ui_workflows.js SERVER_URL [OUTDIR]'); process.exit(2); }
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1800, height: 1100 } });
  const pageErrors = [];
  page.on('pageerror', e => pageErrors.push(e.message));
  await page.goto(url, { waitUntil: 'networkidle', timeout: 120000 });
  await page.waitForFunction(() => window.app && window.app.graph, null, { timeout: 120000 });
  await page.waitForTimeout(2000);
  const atStartup = pageErrors.length;
  let failed = false;
  const names = fs.readdirSync(path.join(REPO, 'workflows')).filter(f => f.endsWith('.json'));
  for (const file of names) {
    const name = file.replace(/\.json$/, '');
    const ui = JSON.parse(fs.readFileSync(path.join(REPO, 'workflows', file), 'utf8'));
    const apiName = name.replace(/^\d+_/, ''); // templates carry their run order: 1_layered_scene
    const api = JSON.parse(fs.readFileSync(path.join(REPO, 'workflows', 'api', `${apiName}_api.json`), 'utf8'));
    const prompt = await page.evaluate(async (wf) => {
      await window.app.loadGraphData(wf);
      return (await window.app.graphToPrompt()).output;
    }, ui);
    const diffs = differences(api, prompt);
    console.log(`${name}: ${Object.keys(prompt).length} nodes in the frontend's prompt, ${Object.keys(api).length} in ` +
                `${name}_api.json, ${diffs.length} differences`);
    diffs.forEach(d => console.log(`  ${d}`));
    failed = failed || diffs.length > 0;
    for (let i = 0; i < 3; i++) { await page.keyboard.press('Escape'); await page.waitForTimeout(300); }
    await page.evaluate(() => { const ds = window.app.canvas.ds; ds.scale = 0.75; window.app.canvas.setDirty(true, true); });
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(outDir, `${name}.png`) });
  }
  const later = pageErrors.slice(atStartup);
  console.log(`page errors: ${atStartup} while the frontend started, ${later.length} while loading workflows`);
  later.forEach(e => console.log(`  ${e}`));
  await browser.close();
  process.exit(failed || later.length ? 1 : 0);
})().catch(e => { console.error(e); process.exit(1); });
