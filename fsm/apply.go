package fsm

// appliers maps every command type to its applier. An applier decodes its
// command (a decode failure panics: the log is corrupt), mutates the state and
// returns a value or a domain error. Adding a command: give it the next free
// number in command.go, write its applier, list it here, and add a test.
var appliers = map[CommandType]func(*txn, []byte) (any, error){
	CmdServerUpsert:         (*txn).applyServerUpsert,
	CmdServerRemove:         (*txn).applyServerRemove,
	CmdInventorySync:        (*txn).applyInventorySync,
	CmdImageUpsert:          (*txn).applyImageUpsert,
	CmdPXEConfigUpsert:      (*txn).applyPXEConfigUpsert,
	CmdImagePXEConfigSet:    (*txn).applyImagePXEConfigSet,
	CmdDeviceSetComments:    (*txn).applyDeviceSetComments,
	CmdDeviceSetEnvironment: (*txn).applyDeviceSetEnvironment,
	CmdLogAppend:            (*txn).applyLogAppend,
	CmdDeviceSetNextBoot:    (*txn).applyDeviceSetNextBoot,
	CmdDeviceEvent:          (*txn).applyDeviceEvent,
	CmdDeviceTimeout:        (*txn).applyDeviceTimeout,
	CmdDeviceStateChange:    (*txn).applyDeviceStateChange,
	CmdSetTimeScale:         (*txn).applySetTimeScale,
	CmdDeviceRegister:       (*txn).applyDeviceRegister,
	CmdRequestCreate:        (*txn).applyRequestCreate,
	CmdRequestEvent:         (*txn).applyRequestEvent,
	CmdRequestTimeout:       (*txn).applyRequestTimeout,
	CmdRequestRenew:         (*txn).applyRequestRenew,
	CmdRequestExpire:        (*txn).applyRequestExpire,
	CmdRequestCompact:       (*txn).applyRequestCompact,
	CmdServerHealth:         (*txn).applyServerHealth,
	CmdTokenCreate:          (*txn).applyTokenCreate,
	CmdTokenRevoke:          (*txn).applyTokenRevoke,
	CmdSetPolicy:            (*txn).applySetPolicy,
}
