// stemforge VST3 -- the tests' JUCE hosts (rt_host, rt_bench) choose the plugin's list
// parameters by the names the plugin gives their values, as a DAW's menu does.
// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <JuceHeader.h>

static juce::AudioProcessorParameter* findParameter(juce::AudioPluginInstance& p, const juce::String& name) {
    for (auto* param : p.getParameters())
        if (param->getName(64) == name) return param;
    return nullptr;
}

// Sets `param` to the value whose text is `text`, telling the host; false if it has none.
static bool choose(juce::AudioProcessorParameter* param, const juce::String& text) {
    if (param == nullptr) return false;
    const int steps = param->getNumSteps();
    for (int k = 0; k < steps; ++k) {
        const float v = steps > 1 ? float(k) / float(steps - 1) : 0.0f;
        if (param->getText(v, 64) == text) {
            param->setValueNotifyingHost(v);
            return true;
        }
    }
    return false;
}

// Sets the model, the margin and the spare worker from "MODEL" (a margin of 1 hop), "MODEL/N" (N hops),
// "MODEL/N+spare" (the spare worker on) or "MODEL/N-spare" (off; neither: the switch as it is), as a
// DAW's menus would; false if the plugin has no such model, margin or switch.
static bool chooseModelAndMargin(juce::AudioPluginInstance& p, const juce::String& step) {
    const int hops = step.contains("/") ? step.fromLastOccurrenceOf("/", false, false).getIntValue() : 1;
    auto* spare = findParameter(p, "spare worker");
    if (spare == nullptr) return false;
    if (step.endsWith("spare")) spare->setValueNotifyingHost(step.endsWith("+spare") ? 1.0f : 0.0f);
    return choose(findParameter(p, "model"), step.contains("/") ? step.upToLastOccurrenceOf("/", false, false) : step)
           && choose(findParameter(p, "margin"), juce::String(hops) + (hops == 1 ? " hop" : " hops"));
}
