// onnx_run.js - runs files of `tkrun export` with onnxruntime-node (CPU) on the inputs that
// tests/lang/onnx_forward.c wrote, and compares with tkrun's outputs from the same file:
//
//     node onnx_run.js ORT_DIR TOLERANCE MODEL.onnx IO.json [MODEL IO]...
//
// ORT_DIR holds node_modules/onnxruntime-node (tests/cli/export.sh installs it there). Prints
// "MODEL: max abs diff D over N values" per model, or "MODEL: <error>" when the output's
// shape is not tkrun's, D is above TOLERANCE or NaN, or onnxruntime refuses the model; exits 1
// if any model failed (or the runtime cannot be loaded at all).
'use strict';
const fs = require('fs');
const path = require('path');

async function compare(ort, model, ioPath, tol) {
    const io = JSON.parse(fs.readFileSync(ioPath, 'utf8'));
    const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
    const input = new ort.Tensor('float32', Float32Array.from(io.input), io.input_shape);
    const { output } = await session.run({ input });
    if (JSON.stringify(output.dims) !== JSON.stringify(io.output_shape))
        throw new Error(`output shape [${output.dims}], tkrun's [${io.output_shape}]`);
    let worst = 0;
    output.data.forEach((v, i) => {
        const d = Math.abs(v - io.output[i]);
        worst = d > worst || Number.isNaN(d) ? d : worst;
    });
    const line = `max abs diff ${worst} over ${output.data.length} values`;
    if (!(worst <= tol))
        throw new Error(`${line}: above ${tol}`);
    return line;
}

async function main() {
    const [ortDir, tol, ...pairs] = process.argv.slice(2);
    const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));
    let failed = pairs.length === 0 || pairs.length % 2 !== 0;
    for (let i = 0; i + 1 < pairs.length; i += 2) {
        try {
            console.log(`${pairs[i]}: ${await compare(ort, pairs[i], pairs[i + 1], Number(tol))}`);
        } catch (e) {
            console.log(`${pairs[i]}: ${e.message}`);
            failed = true;
        }
    }
    process.exit(failed ? 1 : 0);
}

main().catch((e) => {
    console.error(`onnx_run.js: ${e.message}`);
    process.exit(1);
});
