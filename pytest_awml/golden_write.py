"""``--awml-update-golden``: a drift case writes its component's golden outputs (all of the spec's set or none), the
layers a later drift failure localizes on, and its record."""

from __future__ import annotations

from pytest_awml import golden, golden_layers, results
from pytest_awml.intermediates import module_calls
from pytest_awml.provenance import COMPUTE, versions
from pytest_awml.records import GoldenRecord
from pytest_awml.spec import fingerprint


def write(request, workspace, store, case, tolerances) -> None:
    """Write ``case``'s golden outputs into ``store`` (refusing a partial set) and attach the record."""
    spec, component = case.spec, case.component
    # all or nothing: every component of the set is checked before this one is written
    golden.refuse_partial_set(spec.name, {c.component.name: workspace.reference(spec, c.component)
                                          for c in workspace.plan.cases("drift") if c.spec is spec})
    inputs = workspace.inputs(spec, component)
    meta = {"spec": spec.name, "component": component.name, "spec_hash": fingerprint(spec, component),
            "weights_sha256": workspace.model(spec).weights_sha256, "seed": workspace.options.seed, "samples": len(inputs),
            "versions": versions(COMPUTE)}
    update = store.update(spec.name, component.name, inputs, workspace.reference(spec, component), meta, tolerances)
    module = component.extract(workspace.model(spec).model)  # its layers, for a later drift failure to localize on
    golden_layers.write(golden_layers.path_of(store.root, spec.name, component.name),
                        module_calls(module, [inputs[0][name] for name in component.input_names], probed=golden_layers.PROBE))
    if update.replaced:
        request.node.user_properties.append(("awml.golden_replaced", update.replaced))
    results.attach(request.node, GoldenRecord(ids=results.record_ids(case, request.node.nodeid, workspace.options),
                                              path=str(update.path), action=update.action,
                                              old_vs_new_max_abs=update.old_vs_new_max_abs))
