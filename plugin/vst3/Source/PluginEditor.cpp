// stemforge VST3 -- the editor: the model's status, a model-file chooser and the parameters.
// SPDX-License-Identifier: GPL-3.0-or-later
#include "PluginProcessor.h"

namespace stemforge {

// One row per parameter: its name and a control attached to it (a menu for a choice, a toggle
// for a switch, a slider otherwise). Not JUCE's GenericAudioProcessorEditor: its TreeView
// rebuilds its rows in an asynchronous update, which JUCE 7.0.5's Linux VST3 wrapper could
// dispatch on the plugin's own message thread while the host's thread was building the editor
// (pluginval's "Open editor whilst processing" crashed in 3 of 24 runs, docs/plugin.md); these
// rows are built once, in the constructor, and never rebuilt.
class ParameterRow : public juce::Component {
public:
    explicit ParameterRow(juce::RangedAudioParameter& p) {
        name.setText(p.getName(64), juce::dontSendNotification);
        addAndMakeVisible(name);
        if (auto* choice = dynamic_cast<juce::AudioParameterChoice*>(&p)) {
            menu.addItemList(choice->choices, 1);
            addAndMakeVisible(menu);
            menuLink = std::make_unique<juce::ComboBoxParameterAttachment>(p, menu);
        } else if (dynamic_cast<juce::AudioParameterBool*>(&p) != nullptr) {
            addAndMakeVisible(toggle);
            toggleLink = std::make_unique<juce::ButtonParameterAttachment>(p, toggle);
        } else {
            slider.setSliderStyle(juce::Slider::LinearHorizontal);
            slider.setTextBoxStyle(juce::Slider::TextBoxRight, false, 90, 20);
            addAndMakeVisible(slider);
            sliderLink = std::make_unique<juce::SliderParameterAttachment>(p, slider);
        }
    }

    void resized() override {
        auto area = getLocalBounds().reduced(2);
        name.setBounds(area.removeFromLeft(130));
        for (juce::Component* c : {static_cast<juce::Component*>(&menu), static_cast<juce::Component*>(&toggle),
                                   static_cast<juce::Component*>(&slider)})
            c->setBounds(area);
    }

private:
    juce::Label name;
    juce::ComboBox menu;
    juce::ToggleButton toggle;
    juce::Slider slider;
    // after the controls: an attachment detaches from its control when destroyed
    std::unique_ptr<juce::ComboBoxParameterAttachment> menuLink;
    std::unique_ptr<juce::ButtonParameterAttachment> toggleLink;
    std::unique_ptr<juce::SliderParameterAttachment> sliderLink;
};

class Editor : public juce::AudioProcessorEditor, private juce::Timer {
public:
    static constexpr int kRowHeight = 28, kTop = 48;

    explicit Editor(StemforgeProcessor& p) : AudioProcessorEditor(p), proc(p) {
        addAndMakeVisible(status);
        addAndMakeVisible(fileButton);
        status.setJustificationType(juce::Justification::topLeft);
        for (auto* parameter : p.getParameters())
            if (auto* ranged = dynamic_cast<juce::RangedAudioParameter*>(parameter))
                addAndMakeVisible(rows.add(new ParameterRow(*ranged)));
        fileButton.onClick = [this] {
            chooser = std::make_unique<juce::FileChooser>("Choose a stemforge model file", juce::File(), "*.ts");
            chooser->launchAsync(juce::FileBrowserComponent::openMode | juce::FileBrowserComponent::canSelectFiles,
                                 [this](const juce::FileChooser& fc) {
                                     auto f = fc.getResult();
                                     if (f.existsAsFile()) proc.setModelFile(f);
                                 });
        };
        setResizable(true, true);
        setSize(520, 12 + kTop + kRowHeight * rows.size());
        startTimerHz(4);
    }

    void resized() override {
        auto area = getLocalBounds().reduced(6);
        auto top = area.removeFromTop(kTop);
        fileButton.setBounds(top.removeFromRight(130).reduced(2));
        status.setBounds(top);
        for (auto* row : rows) row->setBounds(area.removeFromTop(kRowHeight));
    }

    void paint(juce::Graphics& g) override {
        g.fillAll(getLookAndFeel().findColour(juce::ResizableWindow::backgroundColourId));
    }

private:
    void timerCallback() override {
        auto text = proc.getStatus();
        auto file = proc.getModelFile();
        if (file.isNotEmpty()) text += "\nfile: " + file;
        if (status.getText() != text) status.setText(text, juce::dontSendNotification);
    }

    StemforgeProcessor& proc;
    juce::Label status;
    juce::TextButton fileButton{"Model file..."};
    juce::OwnedArray<ParameterRow> rows;
    std::unique_ptr<juce::FileChooser> chooser;
};

juce::AudioProcessorEditor* StemforgeProcessor::createEditor() { return new Editor(*this); }

}  // namespace stemforge
