"""The test suite; its folders mirror src/napari_sbtt (core, io = core/readers and core/writers,
model, api = the top-level modules, cli, plugin) and benchmarks/."""
