//! XR input: the HUD toggle on the controllers (there is no keyboard in a headset). One
//! OpenXR action, "toggle_hud", bound to X and A on Touch controllers (Quest) and to the menu
//! button on the Khronos simple controller (most desktop runtimes); a press sends
//! [`ToggleHud`], the same message the desktop's H key sends.

use bevy::prelude::*;
use bevy_mod_openxr::action_binding::{OxrSendActionBindings, OxrSuggestActionBinding};
use bevy_mod_openxr::action_set_attaching::OxrAttachActionSet;
use bevy_mod_openxr::action_set_syncing::{OxrActionSetSyncSet, OxrSyncActionSet};
use bevy_mod_openxr::openxr_session_running;
use bevy_mod_openxr::resources::OxrInstance;
use bevy_mod_openxr::session::OxrSession;
use bevy_mod_xr::session::{session_available, XrSessionCreated};

use super::hud::ToggleHud;

/// Where the toggle is suggested, per interaction profile.
const BINDINGS: [(&str, &[&str]); 2] = [
    (
        "/interaction_profiles/oculus/touch_controller",
        &[
            "/user/hand/left/input/x/click",
            "/user/hand/right/input/a/click",
        ],
    ),
    (
        "/interaction_profiles/khr/simple_controller",
        &[
            "/user/hand/left/input/menu/click",
            "/user/hand/right/input/menu/click",
        ],
    ),
];

#[derive(Resource)]
struct HudActions {
    set: openxr::ActionSet,
    toggle: openxr::Action<bool>,
}

pub struct XrInputPlugin;

impl Plugin for XrInputPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, create_actions.run_if(session_available))
            .add_systems(OxrSendActionBindings, suggest_bindings)
            .add_systems(XrSessionCreated, attach_actions)
            .add_systems(
                PreUpdate,
                sync_actions
                    .before(OxrActionSetSyncSet)
                    .run_if(openxr_session_running),
            )
            .add_systems(Update, read_toggle.run_if(openxr_session_running));
    }
}

fn create_actions(instance: Res<OxrInstance>, mut commands: Commands) {
    let created = instance
        .create_action_set("binoc", "binoc", 0)
        .and_then(|set| {
            let toggle = set.create_action("toggle_hud", "Show or hide the HUD", &[])?;
            Ok(HudActions { set, toggle })
        });
    match created {
        Ok(actions) => commands.insert_resource(actions),
        // The picture still shows; only the controller toggle is missing.
        Err(e) => tracing::warn!("OpenXR actions for the HUD toggle: {e}"),
    }
}

fn suggest_bindings(
    actions: Option<Res<HudActions>>,
    mut suggest: MessageWriter<OxrSuggestActionBinding>,
) {
    let Some(actions) = actions else { return };
    for (profile, paths) in BINDINGS {
        suggest.write(OxrSuggestActionBinding {
            action: actions.toggle.as_raw(),
            interaction_profile: profile.into(),
            bindings: paths.iter().map(|&p| p.into()).collect(),
        });
    }
}

fn attach_actions(actions: Option<Res<HudActions>>, mut attach: MessageWriter<OxrAttachActionSet>) {
    if let Some(actions) = actions {
        attach.write(OxrAttachActionSet(actions.set.clone()));
    }
}

fn sync_actions(actions: Option<Res<HudActions>>, mut sync: MessageWriter<OxrSyncActionSet>) {
    if let Some(actions) = actions {
        sync.write(OxrSyncActionSet(actions.set.clone()));
    }
}

fn read_toggle(
    actions: Option<Res<HudActions>>,
    session: Option<Res<OxrSession>>,
    mut toggle: MessageWriter<ToggleHud>,
) {
    let (Some(actions), Some(session)) = (actions, session) else {
        return;
    };
    match actions.toggle.state(&session, openxr::Path::NULL) {
        Ok(s) if s.is_active && s.changed_since_last_sync && s.current_state => {
            toggle.write(ToggleHud);
        }
        Ok(_) => {}
        Err(e) => tracing::debug!("HUD toggle state: {e}"),
    }
}
