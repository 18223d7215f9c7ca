// The "tfjs" preset's reference: @tensorflow-models/mobilenet's own preprocessing, run by TensorFlow.js on its
// pure-JS CPU backend (tfjs-node would download a native binary).
//
//   node preprocess.js manifest.json
//
// manifest.json: {"items": [{"input": "a.rgb", "height": h, "width": w, "size": s, "output": "a_s.f32"}, ...]}
// with paths relative to the manifest's folder. Each input is raw RGB uint8 (h x w x 3, what
// tf.browser.fromPixels gives); each output is the s x s x 3 float32 (little-endian) tensor the model is fed.
//
// At 224 (the package's IMAGE_SIZE) the tensor comes from the package itself: MobileNet.infer with a stub model
// that records what it is fed. The package only knows 224, so other sizes run the same two calls re-typed from
// its dist/index.js (MobileNetImpl.prototype.infer), and every 224 item checks the re-typed calls give the
// package's bits.
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const mobilenet = require('@tensorflow-models/mobilenet');

const IMAGE_SIZE = 224;  // mobilenet's IMAGE_SIZE: the only size infer() resizes to

// A graph model that returns its input: enough for mobilenet.load() (its warm-up predicts zeros), no download.
function identityGraph() {
  const artifacts = {
    modelTopology: {
      node: [
        {name: 'x', op: 'Placeholder', attr: {dtype: {type: 'DT_FLOAT'}, shape: {shape: {dim: [
          {size: '-1'}, {size: String(IMAGE_SIZE)}, {size: String(IMAGE_SIZE)}, {size: '3'}]}}}},
        {name: 'y', op: 'Identity', input: ['x'], attr: {T: {type: 'DT_FLOAT'}}},
      ],
      versions: {producer: 1},
    },
    weightSpecs: [],
    weightData: new ArrayBuffer(0),
  };
  return {load: async () => artifacts};
}

// The package's infer(): a model URL without inputRange gets the package default, [-1, 1] (x * 2/255 - 1),
// which is how an app's own TF.js MobileNet is loaded. The stub model keeps what infer() feeds it.
async function packageInfer() {
  const net = await mobilenet.load({version: 1, modelUrl: identityGraph()});
  let fed = null;
  net.model = {
    predict: (batched) => {
      fed = batched.dataSync().slice();
      return tf.zeros([1, 1001]);
    },
  };
  return (img) => {
    tf.dispose(net.infer(img));
    return fed;
  };
}

// MobileNetImpl.prototype.infer's normalisation (inputMin -1, inputMax 1)...
function normalize(img) {
  const inputMin = -1;
  const inputMax = 1;
  const normalizationConstant = (inputMax - inputMin) / 255.0;
  return tf.add(tf.mul(tf.cast(img, 'float32'), normalizationConstant), inputMin);
}

// ...and its resize, for any size.
function resize(img, normalized, size) {
  return tf.tidy(() => {
    let resized = normalized;
    if (img.shape[0] !== size || img.shape[1] !== size) {
      const alignCorners = true;
      resized = tf.image.resizeBilinear(normalized, [size, size], alignCorners);
    }
    return resized.dataSync().slice();
  });
}

async function main() {
  await tf.setBackend('cpu');
  const manifest = process.argv[2];
  const dir = path.dirname(manifest);
  const {items} = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  const infer = await packageInfer();
  let img = null;
  let normalized = null;
  let input = null;
  for (const it of items) {
    if (it.input !== input) {  // a picture's sizes share its decode and normalisation
      tf.dispose([img, normalized].filter((t) => t));
      input = it.input;
      const bytes = fs.readFileSync(path.join(dir, input));
      if (bytes.length !== it.height * it.width * 3) throw new Error(`${input}: not ${it.height}x${it.width}x3`);
      // tf.browser.fromPixels gives an int32 tensor of the RGB bytes
      img = tf.tensor3d(Int32Array.from(bytes), [it.height, it.width, 3], 'int32');
      normalized = normalize(img);
    }
    let out = resize(img, normalized, it.size);
    if (it.size === IMAGE_SIZE) {
      const own = infer(img);
      if (own.length !== out.length || own.some((v, i) => !Object.is(v, out[i]))) {
        throw new Error(`${input}: the re-typed calls differ from the package's infer()`);
      }
      out = own;
    }
    fs.writeFileSync(path.join(dir, it.output), Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  }
  console.log(`tfjs ${tf.version_core}, ${tf.getBackend()}: ${items.length} tensors`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
