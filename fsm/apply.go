package fsm

import "fmt"

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
	CmdCallbackDone:         (*txn).applyCallbackDone,
	CmdQueueSetWeight:       (*txn).applyQueueSetWeight,
	CmdQueueEpoch:           (*txn).applyQueueEpoch,
	CmdTokenCreate:          (*txn).applyTokenCreate,
	CmdTokenRevoke:          (*txn).applyTokenRevoke,
	CmdSetPolicy:            (*txn).applySetPolicy,
	CmdRackTakeover:         (*txn).applyRackTakeover,
	CmdRackMove:             (*txn).applyRackMove,
}

// commandBodies makes an empty body of every command type, for
// CheckCommand; a test keeps it in step with appliers.
var commandBodies = map[CommandType]func() Command{
	CmdServerUpsert:         func() Command { return new(ServerUpsert) },
	CmdServerRemove:         func() Command { return new(ServerRemove) },
	CmdInventorySync:        func() Command { return new(InventorySync) },
	CmdImageUpsert:          func() Command { return new(ImageUpsert) },
	CmdPXEConfigUpsert:      func() Command { return new(PXEConfigUpsert) },
	CmdImagePXEConfigSet:    func() Command { return new(ImagePXEConfigSet) },
	CmdDeviceSetComments:    func() Command { return new(DeviceSetComments) },
	CmdDeviceSetEnvironment: func() Command { return new(DeviceSetEnvironment) },
	CmdLogAppend:            func() Command { return new(LogAppend) },
	CmdDeviceSetNextBoot:    func() Command { return new(DeviceSetNextBoot) },
	CmdDeviceEvent:          func() Command { return new(DeviceEvent) },
	CmdDeviceTimeout:        func() Command { return new(DeviceTimeout) },
	CmdDeviceStateChange:    func() Command { return new(DeviceStateChange) },
	CmdSetTimeScale:         func() Command { return new(SetTimeScale) },
	CmdDeviceRegister:       func() Command { return new(DeviceRegister) },
	CmdRequestCreate:        func() Command { return new(RequestCreate) },
	CmdRequestEvent:         func() Command { return new(RequestEvent) },
	CmdRequestTimeout:       func() Command { return new(RequestTimeout) },
	CmdRequestRenew:         func() Command { return new(RequestRenew) },
	CmdRequestExpire:        func() Command { return new(RequestExpire) },
	CmdRequestCompact:       func() Command { return new(RequestCompact) },
	CmdServerHealth:         func() Command { return new(ServerHealth) },
	CmdCallbackDone:         func() Command { return new(CallbackDone) },
	CmdQueueSetWeight:       func() Command { return new(QueueSetWeight) },
	CmdQueueEpoch:           func() Command { return new(QueueEpoch) },
	CmdTokenCreate:          func() Command { return new(TokenCreate) },
	CmdTokenRevoke:          func() Command { return new(TokenRevoke) },
	CmdSetPolicy:            func() Command { return new(SetPolicy) },
	CmdRackTakeover:         func() Command { return new(RackTakeover) },
	CmdRackMove:             func() Command { return new(RackMove) },
}

// CheckCommand reports whether b is a command this version can apply: a
// known type whose body decodes. Apply panics on anything else (it can
// only be a corrupt log), so every node would crash on an entry that
// fails here, and on every restart after: an encoded command that comes
// from outside the process (a write forwarded by another node) is checked
// before it is proposed. A type marked IgnoreUnknown that this version
// does not know passes: Apply skips it.
func CheckCommand(b []byte) error {
	t, err := Decode(b, nil)
	if err != nil {
		return err
	}
	body, ok := commandBodies[t&^IgnoreUnknown]
	if !ok {
		if t&IgnoreUnknown != 0 {
			return nil
		}
		return fmt.Errorf("unknown command type %d", uint8(t))
	}
	if _, err := Decode(b, body()); err != nil {
		return err
	}
	return nil
}
