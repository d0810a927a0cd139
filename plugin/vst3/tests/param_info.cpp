// stemforge VST3 -- what a VST3 host reads of the plugin's parameters, through the SDK's interfaces.
// SPDX-License-Identifier: GPL-3.0-or-later
//
//   g++ -std=c++17 param_info.cpp $SDK/pluginterfaces/base/funknown.cpp -I$SDK -ldl -o param_info
//   param_info BUNDLE
//
// ($SDK: the VST3 SDK JUCE carries, /usr/share/juce/modules/juce_audio_processors/format_types/VST3_SDK.)
// Loads the bundle as hosts do (GetPluginFactory, the component and its edit controller, connected)
// and prints one tab-separated line per parameter: "param TITLE STEPS LIST(0|1)", then for a list
// parameter one per value: "value TITLE K NAME" (getParamStringByValue), as Ardour reads scale points.
#define INIT_CLASS_IID
#include "pluginterfaces/base/ipluginbase.h"
#include "pluginterfaces/vst/ivstcomponent.h"
#include "pluginterfaces/vst/ivsteditcontroller.h"
#include "pluginterfaces/vst/ivstmessage.h"
#include "pluginterfaces/vst/ivstaudioprocessor.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>

using namespace Steinberg;
using namespace Steinberg::Vst;

static std::string utf8(const TChar* s) {  // the names are ASCII here
    std::string out;
    for (; *s; ++s) out += char(*s < 128 ? *s : '?');
    return out;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: param_info BUNDLE\n");
        return 2;
    }
    const std::string lib = std::string(argv[1]) + "/Contents/x86_64-linux/stemforge.so";
    void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        std::fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    if (auto entry = reinterpret_cast<bool (*)(void*)>(dlsym(h, "ModuleEntry")); entry && !entry(h)) return 1;
    auto getFactory = reinterpret_cast<IPluginFactory* (*)()>(dlsym(h, "GetPluginFactory"));
    IPluginFactory* factory = getFactory ? getFactory() : nullptr;
    if (!factory) {
        std::fprintf(stderr, "no factory\n");
        return 1;
    }
    IComponent* component = nullptr;
    for (int32 i = 0; i < factory->countClasses() && !component; ++i) {
        PClassInfo info;
        if (factory->getClassInfo(i, &info) == kResultOk && std::strcmp(info.category, kVstAudioEffectClass) == 0)
            factory->createInstance(info.cid, IComponent::iid, reinterpret_cast<void**>(&component));
    }
    if (!component || component->initialize(nullptr) != kResultOk) {
        std::fprintf(stderr, "no component\n");
        return 1;
    }
    TUID cid;
    IEditController* controller = nullptr;
    if (component->getControllerClassId(cid) != kResultOk
        || factory->createInstance(cid, IEditController::iid, reinterpret_cast<void**>(&controller)) != kResultOk
        || controller->initialize(nullptr) != kResultOk) {
        std::fprintf(stderr, "no edit controller\n");
        return 1;
    }
    IConnectionPoint *a = nullptr, *b = nullptr;
    component->queryInterface(IConnectionPoint::iid, reinterpret_cast<void**>(&a));
    controller->queryInterface(IConnectionPoint::iid, reinterpret_cast<void**>(&b));
    if (!a || !b) {
        std::fprintf(stderr, "no connection points\n");
        return 1;
    }
    a->connect(b);
    b->connect(a);
    for (int32 i = 0; i < controller->getParameterCount(); ++i) {
        ParameterInfo p{};
        if (controller->getParameterInfo(i, p) != kResultOk) continue;
        const std::string title = utf8(p.title);
        const bool list = (p.flags & ParameterInfo::kIsList) != 0;
        std::printf("param\t%s\t%d\t%d\n", title.c_str(), p.stepCount, list ? 1 : 0);
        if (!list) continue;
        for (int32 k = 0; k <= p.stepCount; ++k) {
            String128 text{};
            controller->getParamStringByValue(p.id, p.stepCount > 0 ? double(k) / p.stepCount : 0.0, text);
            std::printf("value\t%s\t%d\t%s\n", title.c_str(), k, utf8(text).c_str());
        }
    }
    a->disconnect(b);
    b->disconnect(a);
    controller->terminate();
    component->terminate();
    controller->release();
    component->release();
    a->release();
    b->release();
    std::fflush(stdout);
    return 0;
}
