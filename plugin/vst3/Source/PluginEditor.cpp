// stemforge VST3 -- the editor: the model's status, a model-file chooser and the parameters.
// SPDX-License-Identifier: GPL-3.0-or-later
#include "PluginProcessor.h"

namespace stemforge {

class Editor : public juce::AudioProcessorEditor, private juce::Timer {
public:
    explicit Editor(StemforgeProcessor& p) : AudioProcessorEditor(p), proc(p), generic(p) {
        addAndMakeVisible(status);
        addAndMakeVisible(fileButton);
        addAndMakeVisible(generic);
        status.setJustificationType(juce::Justification::topLeft);
        fileButton.onClick = [this] {
            chooser = std::make_unique<juce::FileChooser>("Choose a stemforge model file", juce::File(), "*.ts");
            chooser->launchAsync(juce::FileBrowserComponent::openMode | juce::FileBrowserComponent::canSelectFiles,
                                 [this](const juce::FileChooser& fc) {
                                     auto f = fc.getResult();
                                     if (f.existsAsFile()) proc.setModelFile(f);
                                 });
        };
        setResizable(true, true);
        setSize(520, 60 + generic.getHeight());
        startTimerHz(4);
    }

    void resized() override {
        auto area = getLocalBounds().reduced(6);
        auto top = area.removeFromTop(48);
        fileButton.setBounds(top.removeFromRight(130).reduced(2));
        status.setBounds(top);
        generic.setBounds(area);
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
    juce::GenericAudioProcessorEditor generic;
    juce::Label status;
    juce::TextButton fileButton{"Model file..."};
    std::unique_ptr<juce::FileChooser> chooser;
};

juce::AudioProcessorEditor* StemforgeProcessor::createEditor() { return new Editor(*this); }

}  // namespace stemforge
